-- 0006_recording_search: find the call behind a complaint by the caller's number however it was
-- written ("0612345678" finds "+33612345678"), and by date alone.
--
-- The search matches the digits the user typed (leading zeros, i.e. trunk / international
-- prefixes, dropped) as a suffix of the caller's digits. A suffix is a prefix of the reversed
-- string, so an index on the reversed digits serves it as a range scan. COLLATE "C" makes that
-- range byte order, whatever the database's collation (ccserver.recording.store builds the range).
-- An expression index, not a stored generated column: adding one would rewrite the whole table.

CREATE INDEX calls_caller_digits_reversed
    ON calls ((reverse(regexp_replace(caller, '[^0-9]', '', 'g')) COLLATE "C"));

-- "Every call of last Tuesday afternoon", newest first: arrival time alone.
CREATE INDEX calls_arrived_at ON calls (arrived_at);
