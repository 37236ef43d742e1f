"""reelgan: GAN-based video synthesis."""
__version__ = "0.2.0"
