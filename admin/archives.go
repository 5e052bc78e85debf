package admin

import (
	"bytes"
	"context"
	"net/http"

	"github.com/chatplat/job-service/archive"
)

// ArchiveLister reads the partition_archive manifest (archive.List on the node's pool).
type ArchiveLister func(ctx context.Context, f archive.ListFilter) ([]*archive.Entry, error)

type archivesPage struct {
	page
	Archives []*archive.Entry
	Filter   archive.ListFilter
	States   []archive.State
}

// pageArchives lists the partitions partition_archive moved to S3 (or is moving), with the
// command that restores each.
func (s *Server) pageArchives(w http.ResponseWriter, r *http.Request) {
	if s.deps.Archives == nil {
		s.fail(w, http.StatusNotFound, notFound("this node has no archive manifest"))
		return
	}
	f := archive.ListFilter{Table: r.URL.Query().Get("table"), State: archive.State(r.URL.Query().Get("state"))}
	entries, err := s.deps.Archives(r.Context(), f)
	if err != nil {
		s.fail(w, http.StatusInternalServerError, err)
		return
	}
	p := archivesPage{page: s.newPage("archives"), Archives: entries, Filter: f, States: []archive.State{
		archive.StateExporting, archive.StateExported, archive.StateVerified, archive.StateDetached,
		archive.StateDropped, archive.StateRestored, archive.StateConflict,
	}}
	s.renderAny(w, http.StatusOK, "archives.html", p)
}

// renderAny renders a console page; render is it for pages of the shared page type, this for
// pages with fields of their own (archives).
func (s *Server) renderAny(w http.ResponseWriter, code int, name string, p any) {
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, p); err != nil {
		s.deps.Log.Error("render console page", "page", name, "err", err)
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}

// derefInt64 prints a nullable count in templates.
func derefInt64(p *int64) any {
	if p == nil {
		return "-"
	}
	return *p
}
