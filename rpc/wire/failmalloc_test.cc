// Allocation-failure injection, in the spirit of nghttp2's failmalloc test:
// the linker routes the wire library's malloc/realloc/calloc through the
// wrappers below (see -Wl,--wrap in BUILD), which fail the Nth call. For
// every N until an operation runs clean, it must report
// CRPC_RESOURCE_EXHAUSTED (or NULL), leave its inputs as they were, and
// leak nothing (LSan checks at exit under --config=asan).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "crpc/metadata.h"
#include "rpc/mem/mem.h"
#include "rpc/wire/compress.h"
#include "rpc/wire/frame.h"
#include "rpc/wire/metadata_wire.h"
#include "rpc/wire/percent.h"

namespace {
long g_fail_at = -1;  // index of the allocation to fail; -1: none
long g_calls = 0;

bool ShouldFail() { return g_fail_at >= 0 && g_calls++ == g_fail_at; }
}  // namespace

extern "C" {
void *__real_malloc(size_t n);
void *__real_realloc(void *p, size_t n);
void *__real_calloc(size_t n, size_t m);
void *__wrap_malloc(size_t n) {
  return ShouldFail() ? nullptr : __real_malloc(n);
}
void *__wrap_realloc(void *p, size_t n) {
  return ShouldFail() ? nullptr : __real_realloc(p, n);
}
void *__wrap_calloc(size_t n, size_t m) {
  return ShouldFail() ? nullptr : __real_calloc(n, m);
}
}

namespace {

// Runs op with allocation n failing, for n = 0, 1, ... until op makes
// fewer than n + 1 allocations (it then ran clean and must succeed).
// Returns how many failure points were exercised.
template <typename Op>
long ForEachFailure(Op op) {
  for (long n = 0;; n++) {
    crpc_mem_depot_release();  // every allocation reaches malloc
    g_calls = 0;
    g_fail_at = n;
    bool ok = op(/*may_fail=*/true);
    long calls = g_calls;
    g_fail_at = -1;
    if (calls <= n) {
      EXPECT_TRUE(ok) << "no allocation failed, yet the operation did";
      return n;
    }
    if (ok) continue;  // the failed allocation had a fallback; fine
  }
}

TEST(FailMalloc, FrameDecoderReportsResourceExhaustedAndFreesItsBuffer) {
  std::string body(70000, 'b');  // several buffer growths
  std::vector<uint8_t> in(5);
  crpc_wire_frame_encode_prefix(in.data(), false, body.size());
  in.insert(in.end(), body.begin(), body.end());
  long points = ForEachFailure([&](bool) {
    crpc_wire_frame_decoder d;
    crpc_wire_frame_decoder_init(&d, 1 << 20);
    bool ok = false;
    for (size_t pos = 0; pos < in.size(); pos += 1000) {
      size_t n = std::min<size_t>(1000, in.size() - pos);
      size_t used;
      crpc_wire_message m{};
      int r = crpc_wire_frame_decoder_feed(&d, in.data() + pos, n, &used, &m);
      if (r == CRPC_WIRE_FRAME_ERROR) {
        EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED,
                  crpc_wire_frame_decoder_error(&d)->code);
        break;
      }
      if (r == CRPC_WIRE_FRAME_MESSAGE) {
        ok = m.len == body.size();
        free(m.data);
      }
    }
    crpc_wire_frame_decoder_destroy(&d);
    return ok;
  });
  EXPECT_GE(points, 3);
}

TEST(FailMalloc, EmptyMessageAllocationFailureIsReported) {
  long points = ForEachFailure([&](bool) {
    crpc_wire_frame_decoder d;
    crpc_wire_frame_decoder_init(&d, 10);
    const uint8_t in[5] = {0, 0, 0, 0, 0};
    size_t used;
    crpc_wire_message m{};
    int r = crpc_wire_frame_decoder_feed(&d, in, 5, &used, &m);
    if (r == CRPC_WIRE_FRAME_MESSAGE) free(m.data);
    crpc_wire_frame_decoder_destroy(&d);
    return r == CRPC_WIRE_FRAME_MESSAGE;
  });
  EXPECT_EQ(1, points);
}

TEST(FailMalloc, MetadataAddAndAppendAreAllOrNothing) {
  crpc_metadata *src = crpc_metadata_new();
  for (int i = 0; i < 20; i++) crpc_metadata_add_str(src, "k", "value");
  long points = ForEachFailure([&](bool) {
    crpc_metadata *md = crpc_metadata_new();
    if (md == nullptr) return false;
    bool ok = crpc_metadata_add_str(md, "first", "1") == CRPC_OK;
    if (ok) {
      crpc_code c = crpc_metadata_append(md, src);
      if (c == CRPC_OK) {
        EXPECT_EQ(21u, crpc_metadata_count(md));
      } else {
        EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, c);
        EXPECT_EQ(1u, crpc_metadata_count(md)) << "append must roll back";
        ok = false;
      }
    } else {
      EXPECT_EQ(0u, crpc_metadata_count(md));
    }
    crpc_metadata_free(md);
    return ok;
  });
  EXPECT_GE(points, 20);
  crpc_metadata_free(src);
}

TEST(FailMalloc, ReceivedJoinedBinaryHeaderIsAllOrNothing) {
  long points = ForEachFailure([&](bool) {
    crpc_metadata *md = crpc_metadata_new();
    if (md == nullptr) return false;
    const std::string v = "Zg,Zm8,Zm9v,Zm9vYg";
    crpc_wire_header_verdict r =
        crpc_wire_metadata_add_received(md, "t-bin", 5, v.data(), v.size());
    bool ok = r == CRPC_WIRE_HEADER_ADDED;
    if (ok) {
      EXPECT_EQ(4u, crpc_metadata_count(md));
    } else {
      EXPECT_EQ(CRPC_WIRE_HEADER_NO_MEMORY, r);
      EXPECT_EQ(0u, crpc_metadata_count(md));
    }
    crpc_metadata_free(md);
    return ok;
  });
  EXPECT_GE(points, 5);
}

TEST(FailMalloc, HeadersFromMetadataRollBack) {
  crpc_metadata *md = crpc_metadata_new();
  for (int i = 0; i < 20; i++) crpc_metadata_add(md, "x-bin", "\1\2\3", 3);
  long points = ForEachFailure([&](bool) {
    crpc_wire_headers hs;
    crpc_wire_headers_init(&hs);
    bool ok = crpc_wire_headers_add(&hs, ":path", 5, "/a/b", 4) == CRPC_OK;
    if (ok) {
      crpc_code c = crpc_wire_headers_add_metadata(&hs, md, nullptr);
      if (c != CRPC_OK) {
        EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, c);
        EXPECT_EQ(1u, hs.count);
        ok = false;
      } else {
        EXPECT_EQ(21u, hs.count);
      }
    }
    crpc_wire_headers_destroy(&hs);
    return ok;
  });
  EXPECT_GE(points, 20);
  crpc_metadata_free(md);
}

TEST(FailMalloc, PercentCodecReturnsNull) {
  long points = ForEachFailure([&](bool) {
    char *e = crpc_wire_percent_encode("50%", 3, nullptr);
    char *d = crpc_wire_percent_decode("50%25", 5, nullptr);
    bool ok = e != nullptr && d != nullptr;
    free(e);
    free(d);
    return ok;
  });
  EXPECT_EQ(2, points);
}

TEST(FailMalloc, CompressionReportsResourceExhausted) {
  std::string text;
  while (text.size() < 100000) text += "compressible text ";
  long points = ForEachFailure([&](bool) {
    uint8_t *z = nullptr;
    size_t zn = 0;
    crpc_code c = crpc_wire_compress(CRPC_WIRE_ENCODING_GZIP, text.data(),
                                     text.size(), &z, &zn, nullptr);
    if (c != CRPC_OK) {
      EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, c);
      EXPECT_EQ(nullptr, z);
      return false;
    }
    uint8_t *out = nullptr;
    size_t n = 0;
    c = crpc_wire_decompress(CRPC_WIRE_ENCODING_GZIP, z, zn, 1 << 20, &out, &n,
                             nullptr);
    free(z);
    if (c != CRPC_OK) {
      EXPECT_EQ(CRPC_RESOURCE_EXHAUSTED, c);
      EXPECT_EQ(nullptr, out);
      return false;
    }
    bool ok = n == text.size() && std::memcmp(out, text.data(), n) == 0;
    free(out);
    return ok;
  });
  EXPECT_GE(points, 3);
}

}  // namespace
