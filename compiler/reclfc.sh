#!/usr/bin/env bash
# bin/reclfc: the graph compiler's command line (the compiler is Lua, run by LuaJIT).
here="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
[ -f "$here/compiler/reclfc.lua" ] || here="$(cd "$(dirname "$0")/.." && pwd)"
export LUA_PATH="$here/?.lua;$here/?/init.lua;${LUA_PATH:-;}"
exec luajit "$here/compiler/reclfc.lua" "$@"
