// Package buildinfo says which build of silentauth is running: the release
// version and the commit, stamped at build time with
//
//	go build -ldflags "-X github.com/silentauth/silentauth/internal/buildinfo.version=v0.1.0 \
//	  -X github.com/silentauth/silentauth/internal/buildinfo.commit=0123abc"
//
// (make build and make release do), else read from the module and VCS
// information Go records in every binary, else "dev" and "unknown".
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// Set by -ldflags -X; empty in a plain `go build`.
var (
	version string
	commit  string
)

// Info describes a build.
type Info struct {
	Version   string // release version (v0.1.0), or "dev"
	Commit    string // VCS revision, or "unknown"
	GoVersion string // the Go release that built the binary
}

// String is the one line the version commands print.
func (i Info) String() string {
	return i.Version + " (commit " + i.Commit + ", " + i.GoVersion + ")"
}

// Get returns the running binary's build. It is safe for concurrent use.
var Get = sync.OnceValue(func() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, commit, bi)
})

// resolve prefers the stamped values, then what Go recorded: the main
// module's version (set by `go install module@version`) and the vcs.revision
// setting (set when building inside a VCS checkout without -buildvcs=false).
func resolve(version, commit string, bi *debug.BuildInfo) Info {
	info := Info{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if bi != nil {
		info.GoVersion = bi.GoVersion
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && commit == "" && info.Commit != "" {
			info.Commit += "-dirty"
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}
