/* obj_sigv4_test.c - the SigV4 signer against AWS's published examples.
 * Vectors: the S3 developer guide's header-auth examples (GET object with a
 * range, PUT object, GET ?lifecycle, list with max-keys/prefix; key
 * AKIAIOSFODNN7EXAMPLE, 20130524) and the AWS SigV4 test suite (service
 * "service", key AKIDEXAMPLE, 20150830T123600Z). Each checks the exact
 * signature; the key-encoding tests check the canonical URI byte for byte.
 * Also the other S3 protocol pieces without a server: request targets for
 * path and virtual-hosted style, and the XML reader/escaper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tiering/obj_int.h"

#define S3_AK      "AKIAIOSFODNN7EXAMPLE"
#define S3_SK      "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define S3_DATE    "20130524T000000Z"
#define EMPTY      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SUITE_AK   "AKIDEXAMPLE"
#define SUITE_SK   "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_DATE "20150830T123600Z"

static void sign_s3(const char *method,
                    const char *uri,
                    const obj__kv_t *q,
                    size_t nq,
                    const obj__kv_t *h,
                    size_t nh,
                    const char *payload,
                    const char *want_sig)
{
    obj__sigv4_in_t in = {.method = method,
                          .canonical_uri = uri,
                          .query = q,
                          .n_query = nq,
                          .headers = h,
                          .n_headers = nh,
                          .payload_hash = payload,
                          .access_key = S3_AK,
                          .secret_key = S3_SK,
                          .region = "us-east-1",
                          .service = "s3",
                          .amz_date = S3_DATE};
    obj__sigv4_out_t out;
    assert_int_equal(obj__sigv4_sign(&in, &out), 0);
    assert_string_equal(out.signature, want_sig);
    assert_non_null(
        strstr(out.authorization, "Credential=" S3_AK "/20130524/us-east-1/s3/aws4_request"));
    obj__sigv4_out_free(&out);
}

static void test_sigv4_s3_get_object_range(void **state)
{
    obj__kv_t h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
                     {"Range", "bytes=0-9"},
                     {"x-amz-content-sha256", EMPTY},
                     {"x-amz-date", S3_DATE}};
    sign_s3("GET", "/test.txt", NULL, 0, h, 4, EMPTY,
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

static void test_sigv4_s3_put_object(void **state)
{
    char ph[65];
    obj__sha256_hex("Welcome to Amazon S3.", 21, ph);
    assert_string_equal(ph, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    obj__kv_t h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
                     {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                     {"x-amz-date", S3_DATE},
                     {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                     {"x-amz-content-sha256", ph}};
    obj__str_t uri = {0};
    assert_int_equal(obj__str_add(&uri, "/", 1), 0);
    assert_int_equal(obj__uri_encode(&uri, "test$file.text", 14, true), 0);
    assert_string_equal(uri.p, "/test%24file.text");
    sign_s3("PUT", uri.p, NULL, 0, h, 5, ph,
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    obj__str_free(&uri);
}

static void test_sigv4_s3_valueless_query(void **state)
{
    obj__kv_t q[] = {{"lifecycle", ""}};
    obj__kv_t h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
                     {"x-amz-date", S3_DATE},
                     {"x-amz-content-sha256", EMPTY}};
    sign_s3("GET", "/", q, 1, h, 3, EMPTY,
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

static void test_sigv4_s3_list_sorted_query(void **state)
{
    obj__kv_t q[] = {{"prefix", "J"}, {"max-keys", "2"}}; /* unsorted on purpose */
    obj__kv_t h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
                     {"x-amz-date", S3_DATE},
                     {"x-amz-content-sha256", EMPTY}};
    sign_s3("GET", "/", q, 2, h, 3, EMPTY,
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

static void sign_suite(const char *method,
                       const obj__kv_t *q,
                       size_t nq,
                       const obj__kv_t *h,
                       size_t nh,
                       const char *payload,
                       const char *want)
{
    char ph[65];
    obj__sha256_hex(payload, strlen(payload), ph);
    obj__sigv4_in_t in = {.method = method,
                          .canonical_uri = "/",
                          .query = q,
                          .n_query = nq,
                          .headers = h,
                          .n_headers = nh,
                          .payload_hash = ph,
                          .access_key = SUITE_AK,
                          .secret_key = SUITE_SK,
                          .region = "us-east-1",
                          .service = "service",
                          .amz_date = SUITE_DATE};
    obj__sigv4_out_t out;
    assert_int_equal(obj__sigv4_sign(&in, &out), 0);
    assert_string_equal(out.signature, want);
    obj__sigv4_out_free(&out);
}

static void test_sigv4_suite_get_vanilla(void **state)
{
    obj__kv_t h[] = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", SUITE_DATE}};
    sign_suite("GET", NULL, 0, h, 2, "",
               "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

static void test_sigv4_suite_query_order(void **state)
{
    obj__kv_t q[] = {{"Param2", "value2"}, {"Param1", "value1"}};
    obj__kv_t h[] = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", SUITE_DATE}};
    sign_suite("GET", q, 2, h, 2, "",
               "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

static void test_sigv4_suite_utf8_query(void **state)
{
    obj__kv_t q[] = {{"\xe1\x88\xb4", "bar"}};
    obj__kv_t h[] = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", SUITE_DATE}};
    sign_suite("GET", q, 1, h, 2, "",
               "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04");
}

static void test_sigv4_suite_header_trim(void **state)
{
    obj__kv_t h[] = {{"Host", "example.amazonaws.com"},
                     {"My-Header1", " value1"},
                     {"My-Header2", " \"a   b   c\""},
                     {"X-Amz-Date", SUITE_DATE}};
    sign_suite("GET", NULL, 0, h, 4, "",
               "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
}

static void test_sigv4_suite_post_form(void **state)
{
    obj__kv_t h[] = {{"Content-Type", "application/x-www-form-urlencoded"},
                     {"Host", "example.amazonaws.com"},
                     {"X-Amz-Date", SUITE_DATE}};
    sign_suite("POST", NULL, 0, h, 3, "Param1=value1",
               "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
}

static void test_uri_encode_key_with_space_unicode_equals(void **state)
{
    const char *key = "dir/sub dir/a=b+c \xc3\xbc\xe2\x82\xac ~_.-!*()%.seg";
    obj__str_t o = {0};
    assert_int_equal(obj__uri_encode(&o, key, strlen(key), true), 0);
    assert_string_equal(o.p, "dir/sub%20dir/a%3Db%2Bc%20%C3%BC%E2%82%AC%20~_.-%21%2A%28%29%25.seg");
    obj__str_free(&o);
    /* query values encode '/' too, and '=' in continuation tokens */
    assert_int_equal(obj__uri_encode(&o, "a/b=+", 5, false), 0);
    assert_string_equal(o.p, "a%2Fb%3D%2B");
    obj__str_free(&o);
}

static void test_sigv4_canonical_request_shape(void **state)
{
    obj__kv_t q[] = {{"uploads", ""}, {"prefix", "p/"}};
    obj__kv_t h[] = {{"host", "127.0.0.1:19000"}, {"x-amz-date", S3_DATE}};
    obj__sigv4_in_t in = {.method = "POST",
                          .canonical_uri = "/b/k",
                          .query = q,
                          .n_query = 2,
                          .headers = h,
                          .n_headers = 2,
                          .payload_hash = "UNSIGNED-PAYLOAD",
                          .access_key = "A",
                          .secret_key = "S",
                          .region = "us-east-1",
                          .service = "s3",
                          .amz_date = S3_DATE};
    obj__sigv4_out_t out;
    assert_int_equal(obj__sigv4_sign(&in, &out), 0);
    assert_string_equal(out.canonical_query, "prefix=p%2F&uploads=");
    assert_string_equal(out.canonical_request, "POST\n/b/k\nprefix=p%2F&uploads=\n"
                                               "host:127.0.0.1:19000\nx-amz-date:" S3_DATE "\n\n"
                                               "host;x-amz-date\nUNSIGNED-PAYLOAD");
    obj__sigv4_out_free(&out);
}

static void check_target(obj_addressing_t addr,
                         const char *endpoint,
                         const char *key,
                         const char *want_host,
                         const char *want_path)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    obj_config_t cfg = {.url = "s3://examplebucket/pre fix",
                        .endpoint = endpoint,
                        .addressing = addr,
                        .region = "us-east-1",
                        .access_key = "A",
                        .secret_key = "S"};
    obj_store_t *st;
    assert_int_equal(obj_store_new(&loop, &cfg, &st, NULL, 0), 0);
    obj__str_t host = {0}, path = {0};
    assert_int_equal(obj__s3_target(st, key, &host, &path), 0);
    assert_string_equal(host.p, want_host);
    assert_string_equal(path.p, want_path);
    obj__str_free(&host);
    obj__str_free(&path);
    obj_store_close(st, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_s3_target_path_and_virtual_hosted(void **state)
{
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_S3");
    check_target(OBJ_ADDR_AUTO, "http://127.0.0.1:9000", "a b/c=d", "127.0.0.1:9000",
                 "/examplebucket/pre%20fix/a%20b/c%3Dd");
    check_target(OBJ_ADDR_AUTO, "http://127.0.0.1:9000", NULL, "127.0.0.1:9000", "/examplebucket");
    check_target(OBJ_ADDR_VIRTUAL, "https://minio.example:9000", "k",
                 "examplebucket.minio.example:9000", "/pre%20fix/k");
    check_target(OBJ_ADDR_VIRTUAL, "https://minio.example:9000", NULL,
                 "examplebucket.minio.example:9000", "/");
    /* AWS default endpoint: virtual-hosted, as in the S3 signing examples */
    check_target(OBJ_ADDR_AUTO, NULL, "test.txt", "examplebucket.s3.us-east-1.amazonaws.com",
                 "/pre%20fix/test.txt");
    check_target(OBJ_ADDR_PATH, NULL, "t", "s3.us-east-1.amazonaws.com",
                 "/examplebucket/pre%20fix/t");
}

static void test_xml_reads_s3_list_reply(void **state)
{
    const char *x = "<?xml version=\"1.0\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/"
                    "2006-03-01/\"><KeyCount>2</KeyCount><Contents><Key>a &amp; b&#x27;s "
                    "&#252;&lt;&gt;</Key><Size>12</Size></Contents><Contents><Key>k2</Key>"
                    "<Size>3</Size></Contents><IsTruncated>true</IsTruncated><Empty/>"
                    "<NextContinuationToken>t+/=</NextContinuationToken></ListBucketResult>";
    const char *p = x, *end = x + strlen(x), *v;
    size_t n;
    assert_true(obj__xml_next(&p, end, "Key", &v, &n)); /* not <KeyCount> */
    char *k = obj__xml_text(v, n);
    assert_string_equal(k, "a & b's \xc3\xbc<>");
    free(k);
    assert_true(obj__xml_next(&p, end, "Key", &v, &n));
    assert_int_equal(n, 2);
    assert_false(obj__xml_next(&p, end, "Key", &v, &n));
    p = x;
    assert_true(obj__xml_next(&p, end, "Empty", &v, &n));
    assert_int_equal(n, 0);
    p = x;
    assert_true(obj__xml_next(&p, end, "NextContinuationToken", &v, &n));
    assert_memory_equal(v, "t+/=", 4);
    /* truncated input is not over-read */
    p = x;
    assert_false(obj__xml_next(&p, x + 120, "NextContinuationToken", &v, &n));
    obj__str_t o = {0};
    assert_int_equal(obj__xml_escape(&o, "<a&'\"b>"), 0);
    assert_string_equal(o.p, "&lt;a&amp;&apos;&quot;b&gt;");
    obj__str_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigv4_s3_get_object_range),
        cmocka_unit_test(test_sigv4_s3_put_object),
        cmocka_unit_test(test_sigv4_s3_valueless_query),
        cmocka_unit_test(test_sigv4_s3_list_sorted_query),
        cmocka_unit_test(test_sigv4_suite_get_vanilla),
        cmocka_unit_test(test_sigv4_suite_query_order),
        cmocka_unit_test(test_sigv4_suite_utf8_query),
        cmocka_unit_test(test_sigv4_suite_header_trim),
        cmocka_unit_test(test_sigv4_suite_post_form),
        cmocka_unit_test(test_uri_encode_key_with_space_unicode_equals),
        cmocka_unit_test(test_sigv4_canonical_request_shape),
        cmocka_unit_test(test_s3_target_path_and_virtual_hosted),
        cmocka_unit_test(test_xml_reads_s3_list_reply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
