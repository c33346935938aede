"""Persistence of transcripts and their exports."""
