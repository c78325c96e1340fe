"""Trading signals: intake, broker adjustment, risk gate, lifecycle, execution feedback and the learning loop."""
