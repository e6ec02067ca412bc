-- 0005_call_dispositions: a call can leave ccserver's queues other than by being answered or
-- abandoned — an escalation step sends the caller to voicemail or turns them into a callback
-- entry, or a supervisor / admin transfers the live call out; the CDR says which
-- (ccserver.cdr.record.Disposition).

ALTER TABLE calls DROP CONSTRAINT calls_disposition_check;
ALTER TABLE calls ADD CONSTRAINT calls_disposition_check CHECK (disposition IN
    ('answered', 'abandoned', 'ivr_hangup', 'ivr_completed', 'lost', 'voicemail', 'callback',
     'transferred'));
