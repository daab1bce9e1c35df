"""Media: discovery (what a corpus holds), decoding, encoders, and the overlapped
decode -> prepare -> embed pipeline."""
