package artifact

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// ErrChecksum is returned by a reader of an S3 blob whose bytes do not hash
// to the SHA-256 recorded when it was put; the read that would have
// delivered its last bytes returns it instead of them, so a copy of the
// blob comes out short rather than wrong.
var ErrChecksum = errors.New("artifact checksum mismatch")

// DefaultPartSize is the S3 store's multipart part size (S3Options.PartSize):
// what one Put holds in memory at most, twice (the part being sent and the
// head read to tell a small blob from a large one). 10,000 parts of it make
// 156 GiB, S3's limit on parts.
const DefaultPartSize = 16 << 20

// S3Options reach an S3-compatible server. cmd/jobgate fills them from its
// flags and the AWS_* variables.
type S3Options struct {
	// Endpoint is http(s)://host[:port]; empty is AWS
	// (https://s3.amazonaws.com).
	Endpoint string
	// Region is the bucket's region; empty asks the server.
	Region string
	// PathStyle addresses the bucket in the path (endpoint/bucket/key)
	// instead of the host name (bucket.endpoint/key): SeaweedFS and MinIO
	// need it.
	PathStyle bool
	// AccessKey, SecretKey and SessionToken sign the requests; both keys
	// are required.
	AccessKey, SecretKey, SessionToken string
	// PartSize is the multipart part size in bytes (default
	// DefaultPartSize; S3's minimum is 5 MiB).
	PartSize int64
	// Transport, when set, carries the requests (tests; a proxy).
	Transport http.RoundTripper
}

// S3 is a Store in an S3-compatible bucket, below a prefix. Blobs are
// streamed both ways: a Put holds at most two parts in memory, a read holds
// what the HTTP body buffers.
//
// Each blob carries the SHA-256 of its bytes in its user metadata
// (x-amz-meta-jobgate-sha256), computed while it was put. A blob that fits
// in one part is hashed before it is sent and put with it in one request. A
// larger one is uploaded in parts to a staging key below ".staging/", then
// copied on the server to its key with the digest as replaced metadata (S3
// sets user metadata when an upload begins, before the digest is known),
// and the staging object removed. Either way a key only ever shows a whole
// blob with its digest: S3 makes an object visible when its upload
// completes, never before. Readers verify the digest (ErrChecksum) when they
// read the whole blob in order; Stat reports it.
type S3 struct {
	client   *minio.Client
	bucket   string
	prefix   string // "" or ending in "/"
	partSize int64
}

var (
	_ Store   = (*S3)(nil)
	_ Seeker  = (*S3)(nil)
	_ Deleter = (*S3)(nil)
)

// metaSHA256 is the user-metadata key of a blob's digest, as minio-go
// gives it back (canonical, without x-amz-meta-).
const metaSHA256 = "Jobgate-Sha256"

// stagingDir holds large blobs while they are uploaded, below the prefix.
const stagingDir = ".staging/"

// NewS3 returns the store for bucket and prefix (a folder key, "" for the
// bucket's root). It checks that the bucket exists, so a wrong endpoint,
// credentials or bucket name fail here rather than at the first job.
func NewS3(ctx context.Context, bucket, prefix string, o S3Options) (*S3, error) {
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return nil, fmt.Errorf("s3 bucket %q: %w", bucket, err)
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		if err := CheckKey(prefix); err != nil {
			return nil, fmt.Errorf("s3 prefix %q: not a clean relative path", prefix)
		}
		prefix += "/"
	}
	if o.AccessKey == "" || o.SecretKey == "" {
		return nil, errors.New("s3 credentials: both an access key and a secret key are needed (--s3-access-key and --s3-secret-key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
	}
	partSize := o.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	if partSize < 5<<20 {
		return nil, fmt.Errorf("s3 part size %d: at least 5 MiB (S3's minimum)", partSize)
	}
	host, secure := "s3.amazonaws.com", true
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, fmt.Errorf("s3 endpoint %q: want http(s)://host[:port]", o.Endpoint)
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	lookup := minio.BucketLookupAuto
	if o.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(o.AccessKey, o.SecretKey, o.SessionToken),
		Secure:       secure,
		Region:       o.Region,
		BucketLookup: lookup,
		Transport:    o.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client: %w", err)
	}
	s := &S3{client: client, bucket: bucket, prefix: prefix, partSize: partSize}
	check, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ok, err := client.BucketExists(check, bucket)
	if err != nil {
		return nil, fmt.Errorf("s3 bucket %q at %s: %w", bucket, host, err)
	}
	if !ok {
		return nil, fmt.Errorf("s3 bucket %q at %s: no such bucket", bucket, host)
	}
	return s, nil
}

// object is the object name of key.
func (s *S3) object(key string) string { return s.prefix + key }

// Put streams r to key, hashing it on the way (see S3).
func (s *S3) Put(ctx context.Context, key string, r io.Reader) error {
	k, err := cleanKey(key)
	if err != nil {
		return err
	}
	h := sha256.New()
	tr := io.TeeReader(r, h)
	// A blob up to one part is read whole first: most are (logs, small
	// outputs), and they go up in one request with their digest.
	var head bytes.Buffer
	n, err := io.CopyN(&head, tr, s.partSize)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("write artifact %s: %w", key, err)
	}
	if n < s.partSize {
		_, err := s.client.PutObject(ctx, s.bucket, s.object(k), &head, n, minio.PutObjectOptions{
			ContentType:  "application/octet-stream",
			UserMetadata: map[string]string{metaSHA256: hex.EncodeToString(h.Sum(nil))},
		})
		if err != nil {
			return fmt.Errorf("write artifact %s: %w", key, err)
		}
		return nil
	}
	staging := s.prefix + stagingDir + randomName()
	defer func() {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = s.client.RemoveObject(cleanup, s.bucket, staging, minio.RemoveObjectOptions{})
	}()
	// The head's bytes go first; once read, MultiReader lets go of them.
	body := io.MultiReader(bytes.NewReader(head.Bytes()), tr)
	head = bytes.Buffer{}
	up, err := s.client.PutObject(ctx, s.bucket, staging, body, -1, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    uint64(s.partSize),
	})
	if err != nil {
		return fmt.Errorf("write artifact %s: %w", key, err)
	}
	_, err = s.client.ComposeObject(ctx,
		minio.CopyDestOptions{
			Bucket:          s.bucket,
			Object:          s.object(k),
			ReplaceMetadata: true,
			UserMetadata:    map[string]string{metaSHA256: hex.EncodeToString(h.Sum(nil))},
		},
		// MatchETag: the staging object is the one uploaded here.
		minio.CopySrcOptions{Bucket: s.bucket, Object: staging, MatchETag: up.ETag})
	if err != nil {
		return fmt.Errorf("write artifact %s: copy from staging: %w", key, err)
	}
	return nil
}

func randomName() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Stat describes key, with the SHA-256 recorded at Put.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	k, err := cleanKey(key)
	if err != nil {
		return Info{}, err
	}
	info, err := s.client.StatObject(ctx, s.bucket, s.object(k), minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s3Error(key, err)
	}
	// A folder a server shows as an object (SeaweedFS keeps folders) is
	// not a blob, as in Dir.
	if strings.HasSuffix(info.Key, "/") || info.ContentType == "application/x-directory" {
		return Info{}, ErrNotFound
	}
	return Info{Size: info.Size, ModTime: info.LastModified, SHA256: info.UserMetadata[metaSHA256]}, nil
}

// Open reads key; the reader verifies the recorded SHA-256 when it reaches
// the end (ErrChecksum). A whole read in order is one GET, made here: it
// says what the blob is and streams it from the start.
func (s *S3) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := cleanKey(key)
	if err != nil {
		return nil, err
	}
	core := minio.Core{Client: s.client}
	body, st, _, err := core.GetObject(ctx, s.bucket, s.object(k), minio.GetObjectOptions{})
	if err != nil {
		return nil, s3Error(key, err)
	}
	if isDirMarker(st) {
		body.Close()
		return nil, ErrNotFound
	}
	r := s.reader(ctx, core, k, key, st)
	r.body = body
	return r, nil
}

// OpenSeeker opens key for random access. It asks what the blob is (size,
// time, digest, ETag) with a HEAD and starts no GET: a ranged download
// seeks first, and each Read that does not follow on from the last starts
// a GET at its own position, pinned to the HEAD's ETag (If-Match), so a
// blob overwritten under a reader fails the read instead of mixing two
// blobs. A read of the whole blob in order verifies its SHA-256. The
// reader makes its requests with ctx.
func (s *S3) OpenSeeker(ctx context.Context, key string) (io.ReadSeekCloser, Info, error) {
	k, err := cleanKey(key)
	if err != nil {
		return nil, Info{}, err
	}
	core := minio.Core{Client: s.client}
	st, err := s.client.StatObject(ctx, s.bucket, s.object(k), minio.StatObjectOptions{})
	if err != nil {
		return nil, Info{}, s3Error(key, err)
	}
	if isDirMarker(st) {
		return nil, Info{}, ErrNotFound
	}
	r := s.reader(ctx, core, k, key, st)
	return r, Info{Size: st.Size, ModTime: st.LastModified, SHA256: r.want}, nil
}

func isDirMarker(st minio.ObjectInfo) bool {
	return strings.HasSuffix(st.Key, "/") || st.ContentType == "application/x-directory"
}

func (s *S3) reader(ctx context.Context, core minio.Core, k, key string, st minio.ObjectInfo) *s3Reader {
	return &s3Reader{
		ctx: ctx, core: core, bucket: s.bucket, object: s.object(k), key: key, etag: st.ETag,
		size: st.Size, want: st.UserMetadata[metaSHA256], h: sha256.New(),
	}
}

// s3Reader streams one version of a blob, one GET per run of reads in
// order; it hashes what it reads while the reads run in order from the
// start, and checks the digest on the read that reaches the end.
type s3Reader struct {
	// ctx is the opener's, for the GETs after a Seek (as an *os.File
	// keeps its descriptor, the reader keeps what its reads need).
	ctx                       context.Context
	core                      minio.Core
	bucket, object, key, etag string
	size                      int64
	want                      string
	h                         hash.Hash
	// body streams the blob from bodyPos; nil before the first Read (for
	// OpenSeeker), after a failed GET and after a failed read.
	body    io.ReadCloser
	bodyPos int64
	// pos is where the next Read reads; hashed is how far the bytes from
	// 0 are hashed (a Seek elsewhere stops hashing until one comes back).
	pos, hashed int64
	checked     bool
}

func (r *s3Reader) Read(p []byte) (int, error) {
	if r.pos >= r.size && r.size > 0 {
		return 0, io.EOF
	}
	if r.body == nil || r.bodyPos != r.pos {
		r.dropBody()
		opts := minio.GetObjectOptions{}
		if r.etag != "" {
			if err := opts.SetMatchETag(r.etag); err != nil {
				return 0, err
			}
		}
		if r.pos > 0 {
			if err := opts.SetRange(r.pos, 0); err != nil {
				return 0, err
			}
		}
		body, _, _, err := r.core.GetObject(r.ctx, r.bucket, r.object, opts)
		if err != nil {
			return 0, s3Error(r.key, err)
		}
		r.body, r.bodyPos = body, r.pos
	}
	n, err := r.body.Read(p)
	r.bodyPos += int64(n)
	if r.pos == r.hashed {
		r.h.Write(p[:n])
		r.hashed += int64(n)
	}
	r.pos += int64(n)
	if r.want != "" && !r.checked && r.hashed == r.size {
		r.checked = true
		if got := hex.EncodeToString(r.h.Sum(nil)); got != r.want {
			return 0, fmt.Errorf("artifact %s: %w: read %s, recorded %s", r.key, ErrChecksum, got, r.want)
		}
	}
	if errors.Is(err, io.EOF) && r.pos < r.size {
		r.dropBody()
		return n, fmt.Errorf("artifact %s: %w after %d of %d bytes", r.key, io.ErrUnexpectedEOF, r.pos, r.size)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		// A broken body is not read again: the next Read starts a new GET
		// at pos (a resumed read).
		r.dropBody()
		return n, s3Error(r.key, err)
	}
	return n, err
}

func (r *s3Reader) dropBody() {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
}

// Seek moves where the next Read reads; it sends no request.
func (r *s3Reader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.size + offset
	default:
		return 0, fmt.Errorf("artifact %s: seek: invalid whence %d", r.key, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("artifact %s: seek to negative offset %d", r.key, abs)
	}
	r.pos = abs
	return abs, nil
}

func (r *s3Reader) Close() error {
	if r.body == nil {
		return nil
	}
	err := r.body.Close()
	r.body = nil
	return err
}

// List returns the keys below prefix (a folder key ending in "/"), sorted.
func (s *S3) List(ctx context.Context, prefix string) ([]string, error) {
	p, err := cleanKey(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return nil, err
	}
	var keys []string
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.object(p) + "/", Recursive: true}) {
		if o.Err != nil {
			return nil, s3Error(prefix, o.Err)
		}
		if strings.HasSuffix(o.Key, "/") {
			continue // a folder marker
		}
		keys = append(keys, strings.TrimPrefix(o.Key, s.prefix))
	}
	sort.Strings(keys)
	return keys, nil
}

// DeletePrefix removes every blob below prefix.
func (s *S3) DeletePrefix(ctx context.Context, prefix string) error {
	p, err := cleanKey(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return err
	}
	objects := make(chan minio.ObjectInfo)
	listErr := make(chan error, 1)
	go func() {
		defer close(objects)
		for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.object(p) + "/", Recursive: true}) {
			if o.Err != nil {
				listErr <- o.Err
				return
			}
			select {
			case objects <- o:
			case <-ctx.Done():
				listErr <- ctx.Err()
				return
			}
		}
		listErr <- nil
	}()
	var first error
	for e := range s.client.RemoveObjects(ctx, s.bucket, objects, minio.RemoveObjectsOptions{}) {
		if first == nil && e.Err != nil && !isNotFound(e.Err) {
			first = fmt.Errorf("delete %s: %w", e.ObjectName, e.Err)
		}
	}
	if err := <-listErr; err != nil {
		return s3Error(prefix, err)
	}
	return first
}

// s3Error maps a missing key or bucket onto ErrNotFound and names key in
// the rest.
func s3Error(key string, err error) error {
	if isNotFound(err) {
		return ErrNotFound
	}
	return fmt.Errorf("artifact %s: %w", key, err)
}

func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.StatusCode == http.StatusNotFound || r.Code == minio.NoSuchKey
}
