"""The consumer and its steps: Connection -> Tasks -> Loop (Events, Mingle, Gossip, Control, Heart slot in)."""
