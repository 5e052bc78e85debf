package app

import (
	"runtime"
	"runtime/debug"
)

// buildVersion is set at link time: go build -ldflags "-X github.com/chatplat/job-service/internal/app.buildVersion=v1.4.0".
// It is never written at run time.
var buildVersion string

// BuildInfo says which build a binary is.
type BuildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	GoVersion string `json:"go_version"`
}

// Build returns the binary's build info: the linked version, else the module version, else
// "devel"; the VCS revision when the build recorded it.
func Build() BuildInfo {
	b := BuildInfo{Version: buildVersion, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				b.Revision = s.Value
			}
		}
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	return b
}

// String is the one line --version prints.
func (b BuildInfo) String() string {
	s := b.Version
	if b.Revision != "" {
		s += " (" + b.Revision + ")"
	}
	return s + " " + b.GoVersion
}
