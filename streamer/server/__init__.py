"""The live captioning server: websocket handlers, rooms and viewer fan-out, the inference scheduler, HTTP."""
