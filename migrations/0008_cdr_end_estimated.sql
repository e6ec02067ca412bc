-- 0008_cdr_end_estimated: a call that ended while its node's link was down has no end time from
-- the PBX (a resync lists live channels only); its ended_at is then the link-down time, a bound,
-- and this says so. The reports and the API show it next to the end.

ALTER TABLE calls ADD COLUMN end_estimated boolean NOT NULL DEFAULT false;
