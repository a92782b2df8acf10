"""Electronic-card QR codes: the reader interface (drivers.qr.interface) and its drivers."""
