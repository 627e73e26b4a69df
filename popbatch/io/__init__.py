"""Reading input files and writing result files."""
