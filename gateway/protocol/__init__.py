"""fal's wire protocol, shared by the gateway and the emulator: URL shapes, webhook signatures,
data URIs."""
