"""The VidTok model family: shared layers, encoder, decoder, tokenizer."""
