"""Input channels. Each one cleans text and refuses typed commands the same way."""
