"""Log diagnosis: a catalogue of Jupyter error signatures (data) and a streaming matcher (pure)."""
