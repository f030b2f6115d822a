-- Site-level app rights (docs/rules.md §8): resolved requests given to an app after its consent,
-- by a tenant administrator or a site owner. They belong to the consent: kept by re-approval,
-- cleared by revocation, deleted with the consent row. JSON text like resolved_requests, one
-- per resource, ordered by resource.
ALTER TABLE consents ADD COLUMN app_rights TEXT NOT NULL DEFAULT '[]';
