"""Drop-in endpoints for clients written for other speech APIs (docs/integrations.md).

Each adapter translates one foreign protocol onto Streamer's own session machinery (`session.py`): the same
admission, room, journal, `StreamSession`, `LivePipeline` and shared inference scheduler as ``/ws/speak``,
so viewers, ``/sessions`` and the exports work for sessions started through any of them.

- `openai`: ``POST /v1/audio/transcriptions`` (OpenAI's file transcription API).
- `whisperlive`: WhisperLive's websocket protocol, on ``/whisperlive`` and on ``/`` upgrades.
- `deepgram`: Deepgram's live API, websocket ``/v1/listen``.
"""
