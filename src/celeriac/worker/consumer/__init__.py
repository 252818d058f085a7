"""The consumer and its steps: Connection -> Events -> Mingle -> Gossip -> Tasks -> Control -> Heart -> Loop."""
