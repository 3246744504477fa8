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
// and moves its expiry along. It compares the version bytes only, so a
// record of an older format is swapped too (and thus rewritten in the
// current one); a format it does not know is 'format'. It answers
// 'reindex' when the subject or the expiry changed, when the record was of
// format '1' (its subject index entry is of the previous layout), or when
// the new record has a ProviderSID whose tag the old record did not end
// with (another sid, none, or a record written before the tag), so the
// caller updates the subject and sid indexes (kept in other Cluster slots,
// out of this script's reach).
//
//	KEYS[1] family key
//	ARGV[1] expected format and version (versionHead), ARGV[2] record,
//	ARGV[3] expiry (ms), ARGV[4] now (ms), ARGV[5] the new record's sid
//	tag, "" when it has no ProviderSID, ARGV[6] the length of the new
//	record's subject field (subjectPrefixLen)
var swapScript = redis.NewScript(`
local exp = redis.call('PEXPIRETIME', KEYS[1])
if exp == -2 or (exp >= 0 and exp < tonumber(ARGV[4])) then
  return 'notfound'
end
local head = redis.call('GETRANGE', KEYS[1], 0, 8)
local format = string.sub(head, 1, 1)
if format ~= '1' and format ~= '2' then
  return 'format'
end
if string.sub(head, 2, 9) ~= string.sub(ARGV[1], 2, 9) then
  return 'conflict'
end
local moved = format ~= '2' or exp ~= tonumber(ARGV[3])
if not moved then
  local n = tonumber(ARGV[6])
  moved = redis.call('GETRANGE', KEYS[1], 9, 8 + n) ~= string.sub(ARGV[2], 10, 9 + n)
end
if not moved and ARGV[5] ~= '' then
  moved = redis.call('GETRANGE', KEYS[1], -8, -1) ~= ARGV[5]
end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
if moved then
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

// indexScript adds an entry to an index (a sorted set scored by expiry):
// a family to its subject's bucket or its provider sid's index. It drops
// the entries already expired, and has the index expire with its
// longest-lived entry. Scores are in the unit the caller chooses (the
// subject buckets count seconds, which listpacks store in 4 bytes where
// milliseconds take 8); ARGV[4] turns one into milliseconds.
//
//	KEYS[1] index key
//	ARGV[1] expiry, ARGV[2] entry, ARGV[3] now, ARGV[4] milliseconds per
//	unit of the scores
var indexScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(top[2]) * tonumber(ARGV[4]))
return 'ok'
`)

// listScript drops the expired entries of an index and returns the
// entries left.
//
//	KEYS[1] index key
//	ARGV[1] now, in the unit of the scores
var listScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
`)
