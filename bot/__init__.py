"""Our parts of the Rasa server: channels, tracker store, start-up."""
