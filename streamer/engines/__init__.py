"""Models behind small interfaces: Whisper (faster-whisper) for decoding, Silero for speech detection."""
