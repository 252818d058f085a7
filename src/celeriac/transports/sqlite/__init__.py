"""The embedded SQLite broker: `transport` (the `Transport`), `ops` and `sqlite.sql` (the SQL), `rows` (row <->
message), `consumer` (leased fetches), `broadcast` (fanout rows), `owners` (lease owner ids: is the local process
behind one gone).
"""
