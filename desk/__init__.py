"""The counsellor desk: tickets of people who asked for a human, and their replies."""
