"""botmon: the Monitoring API of a chatbot platform."""

__version__ = "1.0.0"
