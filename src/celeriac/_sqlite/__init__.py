"""The embedded SQLite database plumbing shared by the broker and the result backend.

Neutral ground: both `celeriac.transports.sqlite.transport` and `celeriac.backends.sqlite` import from here, and this
package imports neither (only `celeriac.errors`).

* `config`: a ``sqlite://`` URL -> file path; numeric ``*_transport_options`` entries.
* `sql`: the named SQL blocks of a ``.sql`` resource.
* `connection`: WAL setup, write transactions, ``PRAGMA data_version``.
* `errors`: sqlite3 errors -> celeriac errors at one boundary.
* `thread`: one connection and the one thread that uses it (optionally refusing a deleted or replaced file).
* `identity`: is the path still the file opened; clearing the WAL files a lost file leaves.
* `watch`: wake waiters when another connection (or this one) committed.
* `commit`: group commit of items submitted by concurrent coroutines.
"""
