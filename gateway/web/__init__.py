"""Small HTTP building blocks shared by the gateway and the emulator: JSON, disconnects."""
