// Package health decides whether backends are up: active checkers (tcp,
// http, https, udp, exec) that probe a target once, and a Monitor that runs
// them on timers, applies rise/fall counting and passive failures seen on
// real traffic, and reports every up/down transition.
//
// It knows nothing of the config file: the daemon turns each (service,
// backend) pair into a Watch with an already defaulted and validated Spec,
// and hands the whole set to Monitor.Set on start and on every reload.
//
// Watches with the same check address and the same Spec share one probe,
// so a backend behind several services is checked once per interval and
// every service sees the same verdict. A reload keeps every probe whose
// check did not change, with its state, counters and rhythm.
//
// Threading: the Monitor's Run goroutine starts and stops probes; each
// probe is one goroutine that owns its timer and its rise/fall counters
// and runs each check on a goroutine of its own, so a slow check never
// delays passive failures or shutdown. Status, Set, ReportFailure and
// ReportSuccess are safe from any goroutine.
package health
