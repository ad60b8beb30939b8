-- An API key the operator lets answer approval forms in band (`keys create
-- --allow-in-band-approval`, DESIGN §5); off for every key made before, as for new ones.
ALTER TABLE api_keys ADD COLUMN allow_in_band_approval BOOLEAN NOT NULL DEFAULT false;
