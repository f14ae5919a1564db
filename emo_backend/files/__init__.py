"""Writing files safely: atomic replace, never clobbering a user's file unasked."""
