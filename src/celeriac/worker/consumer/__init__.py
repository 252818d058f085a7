"""The consumer and its steps: Connection -> Events -> Mingle -> Gossip -> Tasks -> RemoteControl -> Heart -> Loop."""
