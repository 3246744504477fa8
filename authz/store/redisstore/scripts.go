package redisstore

import "github.com/redis/go-redis/v9"

// The scripts are the store's only writes of a family: each runs atomically
// on the server that owns its one key (a Cluster routes EVALSHA by KEYS[1]).
// Times are Unix milliseconds of the store's clock, passed in as ARGV: the
// clock decides expiry (a family is gone once now is past
// AbsoluteExpiresAt), Redis's own PXAT only reclaims the memory. Each script
// answers a status string that Go maps to the store's sentinels.
//
// PEXPIRETIME needs Redis 7.0 or later: -2 for no key, -1 for a key without
// expiry (not ours: left alone), else the expiry in Unix milliseconds.

// createScript stores a family unless a live one holds the id.
//
//	KEYS[1] family key
//	ARGV[1] record, ARGV[2] expiry (ms), ARGV[3] now (ms)
var createScript = redis.NewScript(`
local exp = redis.call('PEXPIRETIME', KEYS[1])
if exp == -1 or exp >= tonumber(ARGV[3]) then
  return 'exists'
end
-- absent, or expired by the store's clock (counts as absent)
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 'ok'
`)

// swapScript replaces a family if its stored version is the expected one,
// and moves its expiry along. It answers 'reindex' when the subject tag or
// the expiry changed, or when the new record has a ProviderSID whose tag
// the old record did not end with (another sid, none, or a record written
// before the tag), so the caller updates the subject and sid indexes (kept
// in other Cluster slots, out of this script's reach).
//
//	KEYS[1] family key
//	ARGV[1] expected format and version (versionHead), ARGV[2] record,
//	ARGV[3] expiry (ms), ARGV[4] now (ms), ARGV[5] the new record's sid
//	tag, "" when it has no ProviderSID
var swapScript = redis.NewScript(`
local exp = redis.call('PEXPIRETIME', KEYS[1])
if exp == -2 or (exp >= 0 and exp < tonumber(ARGV[4])) then
  return 'notfound'
end
local head = redis.call('GETRANGE', KEYS[1], 0, 16)
if string.sub(head, 1, 1) ~= string.sub(ARGV[1], 1, 1) then
  return 'format'
end
if string.sub(head, 1, 9) ~= ARGV[1] then
  return 'conflict'
end
local sidMoved = ARGV[5] ~= '' and redis.call('GETRANGE', KEYS[1], -8, -1) ~= ARGV[5]
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
if sidMoved or string.sub(head, 10, 17) ~= string.sub(ARGV[2], 10, 17) or exp ~= tonumber(ARGV[3]) then
  return 'reindex'
end
return 'ok'
`)

// claimScript records a single-use marker unless a live one holds the key.
// Like createScript it follows the store's clock rather than Redis's: a
// marker whose until has passed by the store's clock counts as absent even
// if Redis has not dropped it yet, so a claim means the same on every
// backend. PXAT only reclaims the memory.
//
//	KEYS[1] marker key
//	ARGV[1] until (ms), ARGV[2] now (ms)
var claimScript = redis.NewScript(`
local exp = redis.call('PEXPIRETIME', KEYS[1])
if exp == -1 or exp >= tonumber(ARGV[2]) then
  return 'taken'
end
redis.call('SET', KEYS[1], '1', 'PXAT', ARGV[1])
return 'ok'
`)

// indexScript adds a family to an index, its subject's or its provider
// sid's (a sorted set of family ids scored by expiry), drops the entries
// already expired, and has the index expire with its longest-lived family.
//
//	KEYS[1] subject or sid index key
//	ARGV[1] expiry (ms), ARGV[2] family id, ARGV[3] now (ms)
var indexScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], top[2])
return 'ok'
`)

// listScript drops the expired entries of a subject or sid index and
// returns the family ids left.
//
//	KEYS[1] subject or sid index key
//	ARGV[1] now (ms)
var listScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
`)
