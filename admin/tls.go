package admin

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves admin.tls_cert/tls_key and loads them again when either file changes,
// so a rotated certificate (a Kubernetes Secret updated in place) is served without a restart.
// It checks the files' modification times at each handshake: two stat calls, no read, while
// nothing changed. A pair that fails to load keeps the previous certificate in service.
type certReloader struct {
	certPath, keyPath string
	log               *slog.Logger

	mu       sync.Mutex
	cert     *tls.Certificate
	certStat fileStamp
	keyStat  fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// newCertReloader loads the pair once: a node told to serve TLS with files it cannot load
// refuses to start rather than fall back to plain HTTP.
func newCertReloader(certPath, keyPath string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certPath: certPath, keyPath: keyPath, log: log}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) reload() error {
	cs, err := stamp(r.certPath)
	if err != nil {
		return fmt.Errorf("admin.tls_cert: %w", err)
	}
	ks, err := stamp(r.keyPath)
	if err != nil {
		return fmt.Errorf("admin.tls_key: %w", err)
	}
	if r.cert != nil && cs == r.certStat && ks == r.keyStat {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(r.certPath, r.keyPath)
	if err != nil {
		return fmt.Errorf("admin.tls_cert/tls_key: load %s and %s: %w", r.certPath, r.keyPath, err)
	}
	r.cert, r.certStat, r.keyStat = &cert, cs, ks
	return nil
}

// getCertificate is tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.cert
	if err := r.reload(); err != nil {
		// Half a rotation (the certificate written, the key not yet) or a bad file: keep
		// serving the pair that worked, and say so.
		r.log.Warn("admin TLS certificate not reloaded; serving the previous one", "err", err)
	} else if r.cert != prev {
		r.log.Info("admin TLS certificate reloaded", "cert", r.certPath)
	}
	return r.cert, nil
}
