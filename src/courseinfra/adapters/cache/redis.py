"""The relation cache on Redis: sets as SET, lists as LIST, text as STRING, readable by any client.

A replacement runs as one Lua script, so Redis applies it atomically: a reader sees every old entry of
the owner or every new one, never a mix, and no retry loop is needed when two publications race. The
bookkeeping lives beside the data under the namespace prefix: ``<ns>:owner:<owner>`` (the owner's keys),
``<ns>:claims`` (how many owners claim each key) and ``<ns>:owners``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

from courseinfra.domain.cache_layout import CacheList, CacheSet, CacheText, CacheValue
from courseinfra.services.cache.ports import RelationCache, ReplaceResult

# KEYS: the owner's manifest, the claims hash, the owners set. ARGV: the owner, then one run per entry:
# kind ("s", "l" or "t"), key, member count, members. unpack() is chunked: Lua's stack holds ~8000 values.
REPLACE_SCRIPT = """
local manifest, claims, owners = KEYS[1], KEYS[2], KEYS[3]
local new, order = {}, {}
local i, written = 2, 0
while i <= #ARGV do
  local kind, key, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local first, last = i + 3, i + 2 + n
  redis.call('DEL', key)
  if kind == 't' then
    redis.call('SET', key, ARGV[first])
  else
    local command = kind == 's' and 'SADD' or 'RPUSH'
    for j = first, last, 1000 do
      redis.call(command, key, unpack(ARGV, j, math.min(j + 999, last)))
    end
  end
  new[key] = true
  order[#order + 1] = key
  written = written + 1
  i = last + 1
end
local deleted = 0
for _, key in ipairs(redis.call('SMEMBERS', manifest)) do
  if new[key] then
    new[key] = 'kept'
  elseif redis.call('HINCRBY', claims, key, -1) <= 0 then
    redis.call('HDEL', claims, key)
    redis.call('DEL', key)
    deleted = deleted + 1
  end
end
redis.call('DEL', manifest)
for j = 1, #order, 1000 do
  local chunk = {}
  for k = j, math.min(j + 999, #order) do
    local key = order[k]
    chunk[#chunk + 1] = key
    if new[key] == true then redis.call('HINCRBY', claims, key, 1) end
  end
  redis.call('SADD', manifest, unpack(chunk))
end
if #order > 0 then redis.call('SADD', owners, ARGV[1]) else redis.call('SREM', owners, ARGV[1]) end
return {written, deleted}
"""

READ_SCRIPT = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'set' then return {kind, redis.call('SMEMBERS', KEYS[1])} end
if kind == 'list' then return {kind, redis.call('LRANGE', KEYS[1], 0, -1)} end
if kind == 'string' then return {kind, {redis.call('GET', KEYS[1])}} end
return {kind, {}}
"""


def _decode(reply: Sequence[Any]) -> CacheValue | None:
    kind, values = reply[0], reply[1]
    if kind == "set":
        return CacheSet(frozenset(values))
    if kind == "list":
        return CacheList(tuple(values))
    if kind == "string":
        return CacheText(values[0])
    return None


class RedisRelationCache(RelationCache):
    def __init__(self, client: redis.Redis, namespace: str = "courseinfra") -> None:
        self.client = client
        self.namespace = namespace
        self._replace = client.register_script(REPLACE_SCRIPT)
        self._read = client.register_script(READ_SCRIPT)

    @classmethod
    def from_url(cls, url: str, namespace: str = "courseinfra") -> RedisRelationCache:
        import redis  # loaded only where Redis is configured

        return cls(redis.Redis.from_url(url, decode_responses=True), namespace)

    def _manifest(self, owner: str) -> str:
        return f"{self.namespace}:owner:{owner}"

    def replace_owned(self, owner: str, entries: Mapping[str, CacheValue]) -> ReplaceResult:
        args: list[str] = [owner]
        for key, value in entries.items():
            match value:
                case CacheSet(members):
                    args += ["s", key, str(len(members)), *members]
                case CacheList(items):
                    args += ["l", key, str(len(items)), *items]
                case CacheText(text):
                    args += ["t", key, "1", text]
        keys = [self._manifest(owner), f"{self.namespace}:claims", f"{self.namespace}:owners"]
        written, deleted = self._replace(keys=keys, args=args)
        return ReplaceResult(written=int(written), deleted=int(deleted))

    def get(self, key: str) -> CacheValue | None:
        return _decode(self._read(keys=[key]))

    def get_many(self, keys: Sequence[str]) -> dict[str, CacheValue | None]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            self._read(keys=[key], client=pipe)
        return {key: _decode(reply) for key, reply in zip(keys, pipe.execute(), strict=True)}

    def owned_keys(self, owner: str) -> frozenset[str]:
        return self._members(self._manifest(owner))

    def _members(self, key: str) -> frozenset[str]:
        members: set[str] = self.client.smembers(key)  # type: ignore[assignment]
        return frozenset(members)

    def clear(self) -> None:
        owners_key = f"{self.namespace}:owners"
        for owner in self._members(owners_key):
            manifest = self._manifest(owner)
            keys = sorted(self._members(manifest))
            for start in range(0, len(keys), 1000):
                self.client.delete(*keys[start : start + 1000])
            self.client.delete(manifest)
        self.client.delete(owners_key, f"{self.namespace}:claims")

    def close(self) -> None:
        self.client.close()
