package store

// An endpoint key is per job, and two attempts of one job can run at once
// for a while (a worker called lost runs on while the job's next attempt
// starts elsewhere): the older attempt must neither overwrite the newer
// one's endpoint (its renewals, its drain) nor remove it. Both checks are
// made in the write itself (lua/endpoint_put.lua, lua/endpoint_remove.lua).
var (
	putEndpointScript    = script("endpoint_put.lua")
	removeEndpointScript = script("endpoint_remove.lua")
)
