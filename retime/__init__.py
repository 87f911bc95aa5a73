"""retime: repair dropped frames and raise the frame rate of videos with neural frame interpolation."""

__version__ = "0.1.0"
