package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name, version, commit string
		bi                    *debug.BuildInfo
		want                  Info
	}{
		{"stamped", "v0.1.0", "abc", &debug.BuildInfo{GoVersion: "go1.26.0", Settings: vcs("def", "true")}, Info{"v0.1.0", "abc", "go1.26.0"}},
		{"go install at a version", "", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.2.0"}}, Info{"v0.2.0", "unknown", "go1.26.0"}},
		{"checkout build", "", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: vcs("def", "false")}, Info{"dev", "def", "go1.26.0"}},
		{"dirty checkout", "", "", &debug.BuildInfo{GoVersion: "go1.26.0", Settings: vcs("def", "true")}, Info{"dev", "def-dirty", "go1.26.0"}},
		{"nothing recorded", "", "", &debug.BuildInfo{GoVersion: "go1.26.0"}, Info{"dev", "unknown", "go1.26.0"}},
	}
	for _, tt := range tests {
		if got := resolve(tt.version, tt.commit, tt.bi); got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestString(t *testing.T) {
	got := Info{"v0.1.0", "abc", "go1.26.0"}.String()
	if want := "v0.1.0 (commit abc, go1.26.0)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
