package api

// TriggerPatch is the body of PATCH /v1/triggers/{name}: each field given
// replaces the trigger's; the trigger keeps its ID, so its hook URL stays.
// Provider and name do not change (delete and create for that).
type TriggerPatch struct {
	Filter *TriggerFilter `json:"filter,omitempty"`
	// Job replaces the job template (checked as on create).
	Job *JobSpec `json:"job,omitempty"`
	// Secret rotates the signing secret: deliveries signed with it are
	// accepted at once, and those signed with the secret it replaces for
	// SecretGraceSeconds more.
	Secret string `json:"secret,omitempty"`
	// SecretGraceSeconds is how long the replaced secret stays valid:
	// default 86400 (a day of GitHub redeliveries), 0 ends it at once, at
	// most 2592000 (30 days). Only with Secret.
	SecretGraceSeconds *int `json:"secret_grace_seconds,omitempty"`
}

// SchedulePatch is the body of PATCH /v1/schedules/{name}: each field given
// replaces the schedule's; the name, history and pause state stay (pause and
// resume have their own routes). A new cron or time zone takes effect from
// the next tick after the change: no tick in between is fired late.
type SchedulePatch struct {
	Cron                    *string  `json:"cron,omitempty"`
	Timezone                *string  `json:"timezone,omitempty"`
	ConcurrencyPolicy       *string  `json:"concurrency_policy,omitempty"`
	StartingDeadlineSeconds *int     `json:"starting_deadline_seconds,omitempty"`
	Job                     *JobSpec `json:"job,omitempty"`
}
