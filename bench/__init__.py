"""script/bench: Teaser against python-socketio and bare Starlette, same run, same machine."""
