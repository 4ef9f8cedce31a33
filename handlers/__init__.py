"""Lambda entry points (one module each) and the event-sourced core they share."""
