"""Language detection among the assistant's twelve languages."""
