/* egress.c: the address classes and the policy applied to a transfer;
 * egress.c is included to reach the open-socket hook. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "../src/egress.c"

static enum auto_addr_class classify(const char *text)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof ss);
    if (strchr(text, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

        in6->sin6_family = AF_INET6;
        ck_assert_int_eq(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;

        in->sin_family = AF_INET;
        ck_assert_int_eq(inet_pton(AF_INET, text, &in->sin_addr), 1);
    }
    return auto_addr_classify((struct sockaddr *)&ss);
}

static const struct {
    const char *addr;
    enum auto_addr_class cls;
} table[] = {
    {"8.8.8.8", AUTO_ADDR_PUBLIC},
    {"1.1.1.1", AUTO_ADDR_PUBLIC},
    {"172.15.255.255", AUTO_ADDR_PUBLIC},
    {"172.32.0.1", AUTO_ADDR_PUBLIC},
    {"100.63.255.255", AUTO_ADDR_PUBLIC},
    {"100.128.0.0", AUTO_ADDR_PUBLIC},
    {"169.253.255.255", AUTO_ADDR_PUBLIC},
    {"223.255.255.255", AUTO_ADDR_PUBLIC},
    {"127.0.0.1", AUTO_ADDR_LOOPBACK},
    {"127.255.255.254", AUTO_ADDR_LOOPBACK},
    {"10.0.0.1", AUTO_ADDR_PRIVATE},
    {"10.255.255.255", AUTO_ADDR_PRIVATE},
    {"172.16.0.1", AUTO_ADDR_PRIVATE},
    {"172.31.255.255", AUTO_ADDR_PRIVATE},
    {"192.168.1.1", AUTO_ADDR_PRIVATE},
    {"100.64.0.1", AUTO_ADDR_PRIVATE},
    {"100.127.255.255", AUTO_ADDR_PRIVATE},
    {"169.254.169.254", AUTO_ADDR_LINK_LOCAL},
    {"169.254.0.1", AUTO_ADDR_LINK_LOCAL},
    {"0.0.0.0", AUTO_ADDR_UNSPECIFIED},
    {"0.1.2.3", AUTO_ADDR_UNSPECIFIED},
    {"224.0.0.1", AUTO_ADDR_MULTICAST},
    {"239.255.255.250", AUTO_ADDR_MULTICAST},
    {"240.0.0.1", AUTO_ADDR_RESERVED},
    {"255.255.255.255", AUTO_ADDR_RESERVED},
    {"192.0.2.1", AUTO_ADDR_RESERVED},
    {"198.18.0.1", AUTO_ADDR_RESERVED},
    {"2606:4700::1111", AUTO_ADDR_PUBLIC},
    {"2a00:1450:4001::1", AUTO_ADDR_PUBLIC},
    {"::1", AUTO_ADDR_LOOPBACK},
    {"::", AUTO_ADDR_UNSPECIFIED},
    {"fe80::1", AUTO_ADDR_LINK_LOCAL},
    {"febf::1", AUTO_ADDR_LINK_LOCAL},
    {"fec0::1", AUTO_ADDR_PRIVATE},
    {"fc00::1", AUTO_ADDR_UNIQUE_LOCAL},
    {"fd12:3456::1", AUTO_ADDR_UNIQUE_LOCAL},
    {"ff02::1", AUTO_ADDR_MULTICAST},
    {"::ffff:127.0.0.1", AUTO_ADDR_LOOPBACK},
    {"::ffff:169.254.169.254", AUTO_ADDR_LINK_LOCAL},
    {"::ffff:8.8.8.8", AUTO_ADDR_PUBLIC},
    {"::10.0.0.1", AUTO_ADDR_PRIVATE},
    {"64:ff9b::a9fe:a9fe", AUTO_ADDR_LINK_LOCAL},
    {"2002:7f00:1::1", AUTO_ADDR_LOOPBACK},
    {"2002:808:808::1", AUTO_ADDR_PUBLIC},
    {"2001:db8::1", AUTO_ADDR_RESERVED},
    {"2001::1", AUTO_ADDR_RESERVED},
    {"100::1", AUTO_ADDR_RESERVED},
};

START_TEST(test_classify)
{
    enum auto_addr_class got = classify(table[_i].addr);

    ck_assert_msg(got == table[_i].cls, "%s: got %s, want %s",
                  table[_i].addr, auto_addr_class_name(got),
                  auto_addr_class_name(table[_i].cls));
}
END_TEST

START_TEST(test_class_names)
{
    struct sockaddr sa = {.sa_family = AF_UNIX};

    ck_assert_str_eq(auto_addr_class_name(AUTO_ADDR_LINK_LOCAL),
                     "link-local");
    ck_assert_str_eq(auto_addr_class_name((enum auto_addr_class)99),
                     "reserved");
    ck_assert_int_eq(auto_addr_classify(&sa), AUTO_ADDR_RESERVED);
    ck_assert_int_eq(auto_addr_classify(NULL), AUTO_ADDR_RESERVED);
}
END_TEST

/* apply() on a fresh handle; 0 or -1, reason in err. */
static int apply(const char *url, char *err, size_t el)
{
    struct auto_egress e;
    CURL *c = curl_easy_init();
    int rc;

    memset(&e, 0, sizeof e);
    ck_assert_ptr_nonnull(c);
    err[0] = '\0';
    rc = auto_egress_apply(&e, c, url, err, el);
    auto_egress_release(&e);
    curl_easy_cleanup(c);
    return rc;
}

START_TEST(test_apply_default_refuses)
{
    char err[256];

    ck_assert_int_eq(auto_egress_init(NULL, 0), 0);
    ck_assert_int_eq(apply("http://127.0.0.1:8081/x", err, sizeof err), -1);
    ck_assert_str_eq(err, "127.0.0.1 is a loopback address; set "
                          "HTTP_JOB_ALLOW_HOSTS to allow it");
    ck_assert_int_eq(
        apply("http://169.254.169.254/latest/meta-data", err, sizeof err),
        -1);
    ck_assert_ptr_nonnull(strstr(err, "link-local"));
    ck_assert_int_eq(apply("http://[::1]:80/", err, sizeof err), -1);
    ck_assert_str_eq(err, "::1 is a loopback address; set "
                          "HTTP_JOB_ALLOW_HOSTS to allow it");
    ck_assert_int_eq(apply("http://[fd00::1]/", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "unique-local"));
    ck_assert_int_eq(apply("https://10.1.2.3/", err, sizeof err), -1);
    ck_assert_int_eq(apply("http://0.0.0.0:8082/", err, sizeof err), -1);
    ck_assert_int_eq(apply("http://localhost:8081/", err, sizeof err), -1);
    ck_assert_str_eq(err, "localhost resolves to a loopback address; set "
                          "HTTP_JOB_ALLOW_HOSTS to allow it");
    /* other spellings of 127.0.0.1 and the metadata address */
    ck_assert_int_eq(apply("http://2130706433:8081/", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "loopback"));
    ck_assert_int_eq(apply("http://0x7f.1/", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "loopback"));
    ck_assert_int_eq(apply("http://[::ffff:169.254.169.254]/", err,
                           sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "link-local"));
    ck_assert_int_eq(apply("http://user:pw@127.0.0.1/", err, sizeof err),
                     -1);
    ck_assert_int_eq(apply("not a url", err, sizeof err), -1);
    /* a public literal needs no DNS and passes */
    ck_assert_int_eq(apply("http://8.8.8.8/", err, sizeof err), 0);
    auto_egress_cleanup();
}
END_TEST

START_TEST(test_apply_allow_list)
{
    char err[256];

    ck_assert_int_eq(auto_egress_init(" localhost , [::1],127.0.0.1,", 0),
                     0);
    ck_assert_int_eq(apply("http://127.0.0.1:8081/x", err, sizeof err), 0);
    ck_assert_int_eq(apply("http://LOCALHOST:8081/x", err, sizeof err), 0);
    ck_assert_int_eq(apply("http://[::1]/", err, sizeof err), 0);
    ck_assert_int_eq(apply("http://127.0.0.2/", err, sizeof err), -1);
    ck_assert_int_eq(apply("http://169.254.169.254/", err, sizeof err), -1);
    ck_assert_int_eq(auto_egress_init("", 1), 0);
    ck_assert_int_eq(apply("http://169.254.169.254/", err, sizeof err), 0);
    ck_assert_int_eq(apply("http://10.0.0.1/", err, sizeof err), 0);
    auto_egress_cleanup();
}
END_TEST

/* The backstop sees the address curl is about to connect to. */
START_TEST(test_open_socket_hook)
{
    struct auto_egress e;
    struct curl_sockaddr a;
    struct sockaddr_in *in = (struct sockaddr_in *)&a.addr;
    curl_socket_t fd;

    memset(&e, 0, sizeof e);
    memset(&a, 0, sizeof a);
    a.family = AF_INET;
    a.socktype = SOCK_STREAM;
    a.protocol = IPPROTO_TCP;
    a.addrlen = sizeof(struct sockaddr_in);
    in->sin_family = AF_INET;
    inet_pton(AF_INET, "169.254.169.254", &in->sin_addr);
    ck_assert_int_eq(open_socket(&e, CURLSOCKTYPE_IPCXN, &a),
                     CURL_SOCKET_BAD);
    ck_assert_str_eq(e.refused,
                     "refused to connect to a link-local address");
    inet_pton(AF_INET, "8.8.8.8", &in->sin_addr);
    fd = open_socket(&e, CURLSOCKTYPE_IPCXN, &a);
    ck_assert_int_ge(fd, 0);
    close(fd);
    e.allow_any = 1;
    inet_pton(AF_INET, "127.0.0.1", &in->sin_addr);
    fd = open_socket(&e, CURLSOCKTYPE_IPCXN, &a);
    ck_assert_int_ge(fd, 0);
    close(fd);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("automation_egress");
    TCase *tc = tcase_create("egress");

    tcase_add_loop_test(tc, test_classify, 0,
                        (int)(sizeof table / sizeof table[0]));
    tcase_add_test(tc, test_class_names);
    tcase_add_test(tc, test_apply_default_refuses);
    tcase_add_test(tc, test_apply_allow_list);
    tcase_add_test(tc, test_open_socket_hook);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
