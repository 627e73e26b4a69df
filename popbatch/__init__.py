"""popbatch: bulk VeriTrans4G POP card operations from CSV and Excel files."""

__version__ = "0.1.0"
