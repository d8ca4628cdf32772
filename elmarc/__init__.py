"""elmarc: which CNN architecture suits your audio task, without training it."""
__version__ = "0.1.0"
