"""Sans-I/O device codecs (Bluetooth SIG GATT, IEEE 11073, ASTM) and thin transports."""
