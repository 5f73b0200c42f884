/* Keep the Triton admin key out of /proc/<pid>/cmdline (inferforge, src/inferforge/triton/hardening.py).
 *
 * Triton 2.51 takes the key of its restricted APIs only on its command line, and /proc/<pid>/cmdline is
 * readable by every local user. inferforge therefore starts tritonserver with a placeholder in place of
 * the key, the real key in the environment variable INFERFORGE_ADMIN_KEY (/proc/<pid>/environ is
 * readable by the same user only), and this library in LD_PRELOAD.
 *
 * The library wraps glibc's __libc_start_main. Before the program's main runs, it
 *   - builds a NEW argv on the heap where every "@inferforge-admin-key@" is replaced by the key; the
 *     kernel keeps showing the original arguments (with the placeholder) in /proc/<pid>/cmdline;
 *   - removes INFERFORGE_ADMIN_KEY from the environment and overwrites its bytes, which is what
 *     /proc/<pid>/environ shows, so neither that file nor a child process (the Python backend stubs)
 *     gets the key;
 *   - restores LD_PRELOAD as it was before inferforge added this library (INFERFORGE_LD_PRELOAD_WAS,
 *     or no LD_PRELOAD at all), so the stubs the server starts do not load it.
 * It fails closed: a placeholder without a key, or a key without a placeholder, ends the process
 * (exit code 127) rather than let the server run with a known key. Without INFERFORGE_ADMIN_KEY and
 * without a placeholder it does nothing to the arguments.
 *
 * It also closes a crash any client could cause: Triton 2.51's classification extension (`class_count`
 * on a requested output) divides the output's byte size by TRITONSERVER_DataTypeByteSize(BYTES), which is
 * 0, and the whole server dies of SIGFPE (later releases check for 0 and answer "class result not
 * available for output due to unsupported type 'BYTES'"). The wrapper below answers 1 for BYTES when the
 * caller is the server's own frontend (the tritonserver executable); its classification code then reaches
 * that same error, and the client gets it as a 400. Every other caller (the core library, the backends)
 * gets the real size.
 *
 * And it gives a request the frontend cannot parse the status of a bad request: Triton 2.51's HTTP frontend
 * reports malformed JSON, a missing `shape` or a non-string BYTES element as TRITONSERVER_ERROR_INTERNAL, a
 * 500 (a server fault, retried by clients and counted against the server). The wrapper of
 * TRITONSERVER_ErrorNew turns INTERNAL into INVALID_ARG, a 400, for those parse messages only, and only when
 * the caller is the frontend (the executable); everything else keeps its code. It also rewords one message the
 * frontend passes on for a body it finds no JSON in (see TRITONSERVER_ErrorMessage below), and shows the frontend
 * each response parameter name once (an ensemble's response repeats them: duplicate JSON keys, see below).
 *
 * And it frames the HTTP front end's replies for clients Triton 2.51 leaves waiting (see writev and readv below): an
 * empty HTTP/1.0 keep-alive reply (health, ready) gets its "Content-Length: 0", pipelined HTTP/1.1 requests are
 * read one at a time, so each gets its answer, a HEAD is answered as GET without the body (was 405 with a body), a 405
 * names the allowed methods (Allow), an OPTIONS is answered 204 with them, and a chunked reply to an HTTP/1.0 client
 * (generate) is written unchunked, ending with the connection. It refuses a request `timeout` sent to an ensemble
 * (Triton 2.51 ignores it there) and a `priority` past the repository's levels, with a 400 that says so (see
 * TRITONSERVER_InferenceRequestSetTimeoutMicroseconds). A dead stub's "not healthy" error is a 503, and on SIGUSR2 (from the
 * watchdog, before it restarts the server) the server drains: it stops listening, refuses new requests with a 503
 * and answers those in flight (see TRITONSERVER_ServerInferAsync). And it keeps the dynamic batcher from sleeping up
 * to 0.5 s with a batch ready while a model instance is already free, or with a request queued behind its idle wait
 * (see pthread_cond_clockwait). A restricted gRPC protocol called without the key answers PERMISSION_DENIED, not
 * UNAVAILABLE (see deny_restricted_grpc).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define KEY_VARIABLE "INFERFORGE_ADMIN_KEY"
#define PRELOAD_WAS_VARIABLE "INFERFORGE_LD_PRELOAD_WAS"
#define PLACEHOLDER "@inferforge-admin-key@"
#define REFUSED 127
#define TRITONSERVER_TYPE_BYTES 13 /* tritonserver.h: INVALID, BOOL, UINT8..64, INT8..64, FP16..64, BYTES */

extern char **environ;

typedef int (*main_function)(int, char **, char **);
typedef int (*start_main_function)(main_function, int, char **, void (*)(void), void (*)(void),
                                   void (*)(void), void *);

static main_function real_main;

static void refuse(const char *why) {
    fprintf(stderr, "error: inferforge admin-key preload: %s; not starting.\n", why);
    fflush(stderr);
    _exit(REFUSED);
}

/* The comma-separated names in the environment variable `variable` into `list` (`size` bytes) as ",name,name,"; left
 * empty when the variable is unset or empty. A value too long for it ends the process. */
static void read_name_list(const char *variable, char *list, size_t size) {
    const char *value = getenv(variable);
    if (value == NULL || *value == '\0')
        return;
    if (strlen(value) + 3 > size) {
        char why[128];
        snprintf(why, sizeof(why), "%s is too long", variable);
        refuse(why);
    }
    snprintf(list, size, ",%s,", value);
}

/* Whether `name` (`length` bytes) is one of the names of `list` (",name,name,", or empty). */
static int listed(const char *list, const char *name, size_t length) {
    char wanted[260];
    if (list[0] == '\0' || length + 3 > sizeof(wanted))
        return 0;
    wanted[0] = ',';
    memcpy(wanted + 1, name, length);
    wanted[length + 1] = ',';
    wanted[length + 2] = '\0';
    return strstr(list, wanted) != NULL;
}

/* `text` with every PLACEHOLDER replaced by `key`, on the heap. */
static char *replace_placeholders(const char *text, const char *key) {
    size_t placeholder_length = strlen(PLACEHOLDER), key_length = strlen(key), count = 0;
    for (const char *at = strstr(text, PLACEHOLDER); at; at = strstr(at + placeholder_length, PLACEHOLDER))
        count++;
    char *result = malloc(strlen(text) - count * placeholder_length + count * key_length + 1);
    if (result == NULL)
        refuse("out of memory");
    char *out = result;
    const char *from = text;
    for (const char *at = strstr(from, PLACEHOLDER); at; at = strstr(from, PLACEHOLDER)) {
        memcpy(out, from, (size_t)(at - from));
        out += at - from;
        memcpy(out, key, key_length);
        out += key_length;
        from = at + placeholder_length;
    }
    strcpy(out, from);
    return result;
}

static char *environment_entry(const char *name) {
    size_t length = strlen(name);
    for (char **entry = environ; entry != NULL && *entry != NULL; entry++)
        if (strncmp(*entry, name, length) == 0 && (*entry)[length] == '=')
            return *entry;
    return NULL;
}

static void read_max_in_flight(void);
static void read_ensembles(void);
static void read_priority_levels(void);
static void read_hidden_extensions(void);
static void start_drain_support(void);

static int main_with_key(int argc, char **argv, char **envp) {
    (void)envp;
    read_max_in_flight(); /* before any thread: the admission limit (see TRITONSERVER_ServerInferAsync below) */
    read_ensembles();     /* and the request checks (see TRITONSERVER_InferenceRequestSetTimeoutMicroseconds) */
    read_priority_levels();
    read_hidden_extensions(); /* and the extensions the server metadata leaves out (see TRITONSERVER_ServerMetadata) */
    start_drain_support();    /* and draining before a restart (see TRITONSERVER_ServerInferAsync) */
    int placeholders = 0;
    for (int i = 0; i < argc; i++)
        if (strstr(argv[i], PLACEHOLDER) != NULL)
            placeholders++;
    char *entry = environment_entry(KEY_VARIABLE);
    if (entry == NULL) {
        if (placeholders > 0)
            refuse("the command line holds the key placeholder but " KEY_VARIABLE " is not set");
        return real_main(argc, argv, environ);
    }
    const char *key = entry + strlen(KEY_VARIABLE) + 1;
    if (*key == '\0' || strstr(key, PLACEHOLDER) != NULL)
        refuse(KEY_VARIABLE " is empty or holds the placeholder");
    if (placeholders == 0)
        refuse(KEY_VARIABLE " is set but no argument holds the placeholder " PLACEHOLDER);

    char **new_argv = calloc((size_t)argc + 1, sizeof(char *));
    if (new_argv == NULL)
        refuse("out of memory");
    for (int i = 0; i < argc; i++)
        new_argv[i] = strstr(argv[i], PLACEHOLDER) != NULL ? replace_placeholders(argv[i], key) : argv[i];
    new_argv[argc] = NULL;

    /* Out of the environment children inherit, then out of the memory /proc/<pid>/environ shows. */
    size_t entry_length = strlen(entry);
    unsetenv(KEY_VARIABLE);
    volatile char *scrub = entry;
    for (size_t i = 0; i < entry_length; i++)
        scrub[i] = '\0';

    const char *preload_was = getenv(PRELOAD_WAS_VARIABLE);
    if (preload_was != NULL) {
        setenv("LD_PRELOAD", preload_was, 1);
        unsetenv(PRELOAD_WAS_VARIABLE);
    } else {
        unsetenv("LD_PRELOAD");
    }
    return real_main(argc, new_argv, environ);
}

static void *program_base; /* where the executable (tritonserver) is mapped */

/* The next definition of `name` after this library's (glibc's), looked up once into `*cache`; NULL, with errno
 * ENOSYS, when there is none. */
static void *next_definition(void **cache, const char *name) {
    if (*cache == NULL)
        *cache = dlsym(RTLD_NEXT, name);
    if (*cache == NULL)
        errno = ENOSYS;
    return *cache;
}

typedef uint32_t (*byte_size_function)(int);

uint32_t TRITONSERVER_DataTypeByteSize(int datatype) {
    static byte_size_function real;
    if (real == NULL)
        real = (byte_size_function)dlsym(RTLD_NEXT, "TRITONSERVER_DataTypeByteSize");
    uint32_t size = real != NULL ? real(datatype) : 0;
    Dl_info caller;
    if (size == 0 && datatype == TRITONSERVER_TYPE_BYTES && program_base != NULL &&
        dladdr(__builtin_return_address(0), &caller) != 0 && caller.dli_fbase == program_base)
        return 1;
    return size;
}

#define TRITONSERVER_ERROR_INTERNAL 1    /* tritonserver.h: UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, ... */
#define TRITONSERVER_ERROR_INVALID_ARG 3

typedef void *(*error_new_function)(int, const char *);

static int is_parse_error(const char *message) {
    /* "Unable to set '...'": an output's `classification` that is not a count; "failed to get request params":
     * `parameters` that is not an object; "attempt to get members ...": a generate body that is not an object. */
    static const char *const prefixes[] = {"failed to parse the request JSON buffer", "Unable to parse ",
                                           "Unable to set '", "failed to get request params",
                                           "attempt to get members for non-object"};
    for (size_t i = 0; message != NULL && i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(message, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

/* The Python backend's answer for a request to a model whose stub died ("Stub process '<model>_0_0' is not healthy."),
 * an INTERNAL error, a 500, is what a restart will cure: inferforge's watchdog restarts the server within seconds. In
 * tritonserver (any caller: the Python backend makes it) it becomes UNAVAILABLE, a 503 (gRPC UNAVAILABLE), which
 * clients and load balancers retry; the message stays. */
#define TRITONSERVER_ERROR_UNAVAILABLE_CODE 4 /* tritonserver.h: UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE */

static int is_dead_worker_error(const char *message) {
    return message != NULL && strncmp(message, "Stub process '", 14) == 0 && strstr(message, "' is not healthy") != NULL;
}

void *TRITONSERVER_ErrorNew(int code, const char *message) {
    static error_new_function real;
    if (real == NULL)
        real = (error_new_function)dlsym(RTLD_NEXT, "TRITONSERVER_ErrorNew");
    Dl_info caller;
    if (code == TRITONSERVER_ERROR_INTERNAL && program_base != NULL && is_parse_error(message) &&
        dladdr(__builtin_return_address(0), &caller) != 0 && caller.dli_fbase == program_base)
        code = TRITONSERVER_ERROR_INVALID_ARG;
    else if (code == TRITONSERVER_ERROR_INTERNAL && program_base != NULL && is_dead_worker_error(message))
        code = TRITONSERVER_ERROR_UNAVAILABLE_CODE;
    return real != NULL ? real(code, message) : NULL;
}

/* A request body the HTTP frontend finds no JSON header in (an empty body, a body that is not what its
 * Content-Encoding says, which Triton 2.51 decompresses to nothing, or a non-numeric Inference-Header-Content-Length)
 * is read as one raw binary tensor. For a model of two inputs (text and text_pair) the core then answers "Raw request
 * must only have 1 input (found 1) to be deduced but got 2 inputs in '<model>' model configuration", which tells a
 * client who forgot the body nothing it can act on. The frontend (the executable) reads its message through
 * TRITONSERVER_ErrorMessage: it gets this sentence instead; the code stays INVALID_ARG (400). */
#define RAW_REQUEST_MESSAGE "Raw request must only have 1 input"
#define RAW_REQUEST_SENTENCE                                                                                   \
    "the request holds no KServe v2 JSON (its body is empty, is not what its Content-Encoding header says, or " \
    "is a raw binary tensor, which only a model of one input takes): send JSON such as "                        \
    "{\"inputs\": [{\"name\": \"text\", \"shape\": [1, 1], \"datatype\": \"BYTES\", \"data\": [\"your text\"]}]}"

typedef const char *(*error_message_function)(void *);

const char *TRITONSERVER_ErrorMessage(void *error) {
    static error_message_function real;
    if (real == NULL)
        real = (error_message_function)dlsym(RTLD_NEXT, "TRITONSERVER_ErrorMessage");
    const char *message = real != NULL ? real(error) : NULL;
    Dl_info caller;
    if (message != NULL && program_base != NULL && strstr(message, RAW_REQUEST_MESSAGE) != NULL &&
        dladdr(__builtin_return_address(0), &caller) != 0 && caller.dli_fbase == program_base)
        return RAW_REQUEST_SENTENCE;
    return message;
}

/* An ensemble's response holds its steps' response parameters once per output (sequence_id, sequence_start and
 * sequence_end three times for three outputs), and Triton 2.51's HTTP frontend writes each as a member of the
 * response's "parameters" object: the same key several times, which strict JSON readers refuse (.NET's
 * System.Text.Json into a dictionary, serde_json into a struct, any parser that rejects duplicate names). For the
 * frontend (the executable) the two wrappers below show each name once, with its last value (what a lenient parser
 * kept, and what gRPC's map kept); everything else sees the parameters as they are. On any error, or more
 * parameters than MAX_PARAMETERS, the real ones pass through. */
#define MAX_PARAMETERS 256

typedef void *(*parameter_count_function)(void *, uint32_t *);
typedef void *(*parameter_function)(void *, uint32_t, const char **, int *, const void **);
typedef void (*error_delete_function)(void *);

static parameter_count_function real_parameter_count;
static parameter_function real_parameter;
static error_delete_function real_error_delete;

static int resolve_parameter_functions(void) {
    if (real_parameter_count == NULL)
        real_parameter_count = (parameter_count_function)dlsym(RTLD_NEXT, "TRITONSERVER_InferenceResponseParameterCount");
    if (real_parameter == NULL)
        real_parameter = (parameter_function)dlsym(RTLD_NEXT, "TRITONSERVER_InferenceResponseParameter");
    if (real_error_delete == NULL)
        real_error_delete = (error_delete_function)dlsym(RTLD_NEXT, "TRITONSERVER_ErrorDelete");
    return real_parameter_count != NULL && real_parameter != NULL && real_error_delete != NULL;
}

/* Indices of the parameters of `response` that are the last of their name, in order, into `kept`; their number, or
 * -1 when they cannot be read (the caller then shows the parameters as they are). */
static int last_of_each_name(void *response, uint32_t kept[MAX_PARAMETERS]) {
    uint32_t count = 0;
    void *error = real_parameter_count(response, &count);
    if (error != NULL) {
        real_error_delete(error);
        return -1;
    }
    if (count > MAX_PARAMETERS)
        return -1;
    const char *names[MAX_PARAMETERS];
    for (uint32_t i = 0; i < count; i++) {
        int type;
        const void *value;
        error = real_parameter(response, i, &names[i], &type, &value);
        if (error != NULL) {
            real_error_delete(error);
            return -1;
        }
        if (names[i] == NULL)
            return -1;
    }
    int found = 0;
    for (uint32_t i = 0; i < count; i++) {
        int last = 1;
        for (uint32_t j = i + 1; j < count && last; j++)
            last = strcmp(names[i], names[j]) != 0;
        if (last)
            kept[found++] = i;
    }
    return found;
}

static int called_by_the_frontend(const void *return_address) {
    Dl_info caller;
    return program_base != NULL && dladdr(return_address, &caller) != 0 && caller.dli_fbase == program_base;
}

void *TRITONSERVER_InferenceResponseParameterCount(void *response, uint32_t *count) {
    if (!resolve_parameter_functions()) { /* not in tritonserver, which links libtritonserver */
        if (count != NULL)
            *count = 0;
        return NULL;
    }
    uint32_t kept[MAX_PARAMETERS];
    int found;
    if (count != NULL && called_by_the_frontend(__builtin_return_address(0)) &&
        (found = last_of_each_name(response, kept)) >= 0) {
        *count = (uint32_t)found;
        return NULL;
    }
    return real_parameter_count(response, count);
}

void *TRITONSERVER_InferenceResponseParameter(void *response, const uint32_t index, const char **name, int *type,
                                              const void **value) {
    if (!resolve_parameter_functions())
        return NULL; /* not in tritonserver: no program without libtritonserver calls this */
    uint32_t kept[MAX_PARAMETERS];
    int found;
    if (called_by_the_frontend(__builtin_return_address(0)) && (found = last_of_each_name(response, kept)) >= 0 &&
        index < (uint32_t)found)
        return real_parameter(response, kept[index], name, type, value);
    return real_parameter(response, index, name, type, value);
}

/* Admission control: at most INFERFORGE_MAX_IN_FLIGHT requests of the front ends (HTTP /infer, /generate,
 * /generate_stream, gRPC) in flight per model; past that TRITONSERVER_ServerInferAsync refuses the request at once with
 * UNAVAILABLE ("Exceeds maximum queue size ..."), which the front ends answer with a 503 (gRPC UNAVAILABLE) and then
 * delete the request themselves, as for any synchronous failure. Why: Triton 2.51's ensemble scheduler leaves some
 * ensemble requests without ANY response when its first step refuses them (queue full or queue timeout; upstream core
 * PR #466), so inferforge gives that step no queue limit, and an ensemble refused nothing before its later step's
 * queue was full (answered with a 400 on /generate). Refusing before the request enters the ensemble avoids both.
 *
 * A request is counted from an admitted ServerInferAsync until Triton releases it (its release callback with
 * TRITONSERVER_REQUEST_RELEASE_ALL, once all its responses are sent or it failed), or until ServerInferAsync itself
 * fails (then no release callback runs and the front end deletes it). To find a request's model and its release
 * callback, the library remembers each front-end request from TRITONSERVER_InferenceRequestNew (the model name) to
 * TRITONSERVER_InferenceRequestDelete, and puts its own callback in front of the front end's. Counts are atomics;
 * the table of requests is behind a mutex (held for a lookup only, never across a call into Triton). Only the
 * front end's calls (the executable) are counted; backends' requests (BLS) and the ensemble's own step requests
 * (internal to the core, not through this API) are not. INFERFORGE_MAX_IN_FLIGHT absent or 0: nothing is wrapped. */
#define MAX_IN_FLIGHT_VARIABLE "INFERFORGE_MAX_IN_FLIGHT"
#define TRITONSERVER_ERROR_UNAVAILABLE 4 /* tritonserver.h: ..., INVALID_ARG, UNAVAILABLE, UNSUPPORTED, ... */
#define TRITONSERVER_REQUEST_RELEASE_ALL 1
#define MAX_MODELS 64        /* model names counted; a server of more models counts the first 64 only */
#define MAX_MODEL_NAME 256   /* longer names are not counted */
#define REQUEST_BUCKETS 4096 /* hash table of the front end's live requests */

typedef void (*release_function)(void *, uint32_t, void *);
typedef void *(*request_new_function)(void **, void *, const char *, int64_t);
typedef void *(*request_delete_function)(void *);
typedef void *(*set_release_function)(void *, release_function, void *);
typedef void *(*infer_async_function)(void *, void *, void *);

struct model_count {
    char name[MAX_MODEL_NAME];
    atomic_int in_flight;
    int ensemble; /* named in INFERFORGE_ENSEMBLES (see TRITONSERVER_InferenceRequestSetTimeoutMicroseconds) */
};

/* A BYTES input of a front-end request, as the front end hands its data over (one or more CPU buffers). */
#define MAX_STRING_INPUTS 4
#define MAX_INPUT_SEGMENTS 64
#define MAX_INPUT_NAME 64
struct string_input {
    char name[MAX_INPUT_NAME];
    int segments; /* -1: not checked (too many buffers, memory that is not the CPU's, an attribute-described buffer) */
    const unsigned char *base[MAX_INPUT_SEGMENTS];
    size_t size[MAX_INPUT_SEGMENTS];
};
struct string_inputs {
    int count;
    struct string_input input[MAX_STRING_INPUTS];
};

struct tracked_request {
    void *request;
    struct model_count *model;
    release_function callback; /* the front end's release callback and its argument */
    void *userp;
    atomic_int counted; /* 1 from admission until the release (or the failed ServerInferAsync) uncounts it */
    struct string_inputs *strings; /* its BYTES inputs' buffers, checked by ServerInferAsync (see below); or NULL */
    struct tracked_request *next;
};

static int max_in_flight; /* 0: admission control off */
static struct model_count models[MAX_MODELS];
static atomic_int model_total;
static struct tracked_request *requests[REQUEST_BUCKETS];
static pthread_mutex_t admission_lock = PTHREAD_MUTEX_INITIALIZER;
static request_new_function real_request_new;
static request_delete_function real_request_delete;
static set_release_function real_set_release;
static infer_async_function real_infer_async;
static error_new_function real_error_new;

static void resolve_admission_functions(void) {
    real_request_new = (request_new_function)dlsym(RTLD_NEXT, "TRITONSERVER_InferenceRequestNew");
    real_request_delete = (request_delete_function)dlsym(RTLD_NEXT, "TRITONSERVER_InferenceRequestDelete");
    real_set_release = (set_release_function)dlsym(RTLD_NEXT, "TRITONSERVER_InferenceRequestSetReleaseCallback");
    real_infer_async = (infer_async_function)dlsym(RTLD_NEXT, "TRITONSERVER_ServerInferAsync");
    real_error_new = (error_new_function)dlsym(RTLD_NEXT, "TRITONSERVER_ErrorNew");
}

static void read_max_in_flight(void) {
    const char *value = getenv(MAX_IN_FLIGHT_VARIABLE);
    if (value == NULL || *value == '\0')
        return;
    char *end;
    long limit = strtol(value, &end, 10);
    if (*end != '\0' || limit < 0 || limit > 1000000000L)
        refuse(MAX_IN_FLIGHT_VARIABLE " is not a count of requests (0 = no limit)");
    max_in_flight = (int)limit;
}

/* Model names the server serves as ensembles, ",name,name," (INFERFORGE_ENSEMBLES, set by inferforge from the
 * repository), or empty; the front end's requests are tracked (the table below) when it is set or admission is on. */
#define ENSEMBLES_VARIABLE "INFERFORGE_ENSEMBLES"
static char ensembles[4096];

static void read_ensembles(void) {
    read_name_list(ENSEMBLES_VARIABLE, ensembles, sizeof(ensembles));
}

static int is_ensemble(const char *name) {
    return listed(ensembles, name, strlen(name));
}

static int tracking_requests(void) {
    return max_in_flight > 0 || ensembles[0] != '\0';
}

static size_t bucket_of(const void *request) {
    uintptr_t key = (uintptr_t)request;
    return (size_t)((key >> 4) ^ (key >> 16)) % REQUEST_BUCKETS;
}

/* The counter of `name`, added on first sight (under admission_lock); NULL when it cannot be counted. */
static struct model_count *model_named(const char *name) {
    if (name == NULL || strlen(name) >= MAX_MODEL_NAME)
        return NULL;
    int total = atomic_load(&model_total);
    for (int i = 0; i < total; i++)
        if (strcmp(models[i].name, name) == 0)
            return &models[i];
    if (total == MAX_MODELS)
        return NULL;
    strcpy(models[total].name, name);
    atomic_init(&models[total].in_flight, 0);
    models[total].ensemble = is_ensemble(name);
    atomic_store(&model_total, total + 1);
    return &models[total];
}

static struct tracked_request *find_tracked(const void *request) {
    struct tracked_request *found = requests[bucket_of(request)];
    while (found != NULL && found->request != request)
        found = found->next;
    return found;
}

/* The tracked request the front end (the caller at `return_address`) passes; NULL when it is not counted. */
static struct tracked_request *frontend_request(const void *request, const void *return_address) {
    if (!tracking_requests() || !called_by_the_frontend(return_address))
        return NULL;
    pthread_mutex_lock(&admission_lock);
    struct tracked_request *tracked = find_tracked(request);
    pthread_mutex_unlock(&admission_lock);
    return tracked;
}

static atomic_llong last_uncount_ns; /* CLOCK_MONOTONIC time the last counted request was released (the batcher's poll) */

static long long monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

static void uncount(struct tracked_request *tracked) {
    if (atomic_exchange(&tracked->counted, 0)) {
        atomic_fetch_sub(&tracked->model->in_flight, 1);
        atomic_store(&last_uncount_ns, monotonic_ns());
    }
}

void *TRITONSERVER_InferenceRequestNew(void **request, void *server, const char *model_name, int64_t version) {
    if (real_request_new == NULL)
        resolve_admission_functions();
    if (real_request_new == NULL)
        return NULL; /* not in tritonserver: nothing calls this */
    void *error = real_request_new(request, server, model_name, version);
    if (error != NULL || !tracking_requests() || request == NULL || *request == NULL ||
        !called_by_the_frontend(__builtin_return_address(0)))
        return error;
    struct tracked_request *tracked = calloc(1, sizeof(*tracked));
    if (tracked == NULL)
        return NULL; /* not counted */
    tracked->request = *request;
    pthread_mutex_lock(&admission_lock);
    tracked->model = model_named(model_name);
    if (tracked->model != NULL) {
        size_t bucket = bucket_of(*request);
        tracked->next = requests[bucket];
        requests[bucket] = tracked;
    }
    pthread_mutex_unlock(&admission_lock);
    if (tracked->model == NULL)
        free(tracked);
    return NULL;
}

void *TRITONSERVER_InferenceRequestDelete(void *request) {
    if (real_request_delete == NULL)
        resolve_admission_functions();
    if (real_request_delete == NULL)
        return NULL;
    if (tracking_requests() && request != NULL) {
        pthread_mutex_lock(&admission_lock);
        struct tracked_request **link = &requests[bucket_of(request)];
        while (*link != NULL && (*link)->request != request)
            link = &(*link)->next;
        struct tracked_request *tracked = *link;
        if (tracked != NULL)
            *link = tracked->next;
        pthread_mutex_unlock(&admission_lock);
        if (tracked != NULL) {
            uncount(tracked); /* never released (should not happen): not in flight any more either */
            free(tracked->strings);
            free(tracked);
        }
    }
    return real_request_delete(request);
}

/* In front of the front end's release callback: uncounts the request once, on its final release, then hands the
 * release on. `tracked` may be freed by the front end's callback (it deletes the request): not touched after it. */
static void release_tracked(void *request, uint32_t flags, void *userp) {
    struct tracked_request *tracked = userp;
    release_function callback = tracked->callback;
    void *callback_userp = tracked->userp;
    if (flags & TRITONSERVER_REQUEST_RELEASE_ALL)
        uncount(tracked);
    if (callback != NULL)
        callback(request, flags, callback_userp);
}

void *TRITONSERVER_InferenceRequestSetReleaseCallback(void *request, release_function callback, void *userp) {
    if (real_set_release == NULL)
        resolve_admission_functions();
    if (real_set_release == NULL)
        return NULL;
    struct tracked_request *tracked = frontend_request(request, __builtin_return_address(0));
    if (tracked == NULL || callback == NULL)
        return real_set_release(request, callback, userp);
    tracked->callback = callback;
    tracked->userp = userp;
    void *error = real_set_release(request, release_tracked, tracked);
    if (error != NULL)
        tracked->callback = NULL; /* not wrapped: ServerInferAsync will not count it */
    return error;
}

/* Draining before a restart. When a stub dies, inferforge's watchdog restarts the whole server; the requests in flight
 * then lost their connection. With INFERFORGE_DRAIN_FILE set, SIGUSR2 (sent by the watchdog once it has bound its 503
 * answerer) puts the server in draining: its listening sockets stop taking connections (new ones reach the answerer),
 * every new front-end request on a connection already open is refused at once with UNAVAILABLE (503, gRPC
 * UNAVAILABLE, RESTARTING_MESSAGE, the watchdog's own words), every HTTP/1.1 reply head written gets "Connection: close"
 * (the client's next request opens a new connection, which may reach the watchdog's answerer), and a thread waits until
 * the requests in flight are answered (the admission counts above reach 0: requests to the dead stub are answered by
 * Triton as "Stub process ... is not healthy", a 503 through TRITONSERVER_ErrorNew above), at most DRAIN_TIMEOUT_MS,
 * lets the replies be written (DRAIN_FLUSH_MS), then creates the file: the watchdog kills the server when it sees it.
 * Without admission control (INFERFORGE_MAX_IN_FLIGHT 0) nothing is counted and the drain is the flush time only. */
#define DRAIN_FILE_VARIABLE "INFERFORGE_DRAIN_FILE"
#define DRAIN_SIGNAL SIGUSR2
/* The same drain before a shutdown (`inferforge serve` stopped by Ctrl-C or SIGTERM, sent before Triton's SIGTERM): the
 * new requests of connections kept alive are refused at once with these words, and the connections closed, instead of
 * being served until Triton's exit timeout and then cut. */
#define SHUTDOWN_DRAIN_SIGNAL SIGUSR1
#define SHUTTING_DOWN_MESSAGE "the server is shutting down; send the request to another server or retry once it is back"
#define DRAIN_TIMEOUT_MS 5000
#define DRAIN_FLUSH_MS 200
#define RESTARTING_MESSAGE "the server is restarting after a worker crash; retry in a few seconds"

static atomic_int draining;
static atomic_int shutting_down;
static char drain_file[4096];
static sem_t drain_requested;

static void request_drain(int signal_number) {
    if (signal_number == SHUTDOWN_DRAIN_SIGNAL)
        atomic_store(&shutting_down, 1);
    if (atomic_exchange(&draining, 1) == 0)
        sem_post(&drain_requested); /* async-signal-safe; one drain per server */
}

static int front_end_in_flight(void) {
    int total = 0, models_counted = atomic_load(&model_total);
    for (int i = 0; i < models_counted; i++)
        total += atomic_load(&models[i].in_flight);
    return total;
}

/* Stops every TCP listening socket of the process (HTTP, gRPC, metrics) from taking connections: new ones go to the
 * other socket of the port (the watchdog's 503 answerer shares the HTTP port) or are refused, instead of waiting in a
 * backlog the kill would reset. */
static void stop_listening(void) {
    struct rlimit limit;
    int highest = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < 65536 ? (int)limit.rlim_cur : 65536;
    for (int fd = 0; fd < highest; fd++) {
        int listening = 0;
        socklen_t length = sizeof(listening);
        struct sockaddr_storage address;
        socklen_t address_length = sizeof(address);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0 && listening &&
            getsockname(fd, (struct sockaddr *)&address, &address_length) == 0 &&
            (address.ss_family == AF_INET || address.ss_family == AF_INET6))
            shutdown(fd, SHUT_RD);
    }
}

static void *drain(void *unused) {
    (void)unused;
    while (sem_wait(&drain_requested) != 0)
        ; /* EINTR */
    stop_listening();
    for (int waited = 0; waited < DRAIN_TIMEOUT_MS && front_end_in_flight() > 0; waited += 10)
        usleep(10000);
    usleep(DRAIN_FLUSH_MS * 1000);
    int file = open(drain_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (file >= 0) {
        char left[32];
        int length = snprintf(left, sizeof(left), "%d\n", front_end_in_flight());
        if (write(file, left, (size_t)length) < 0)
            perror("inferforge drain file");
        close(file);
    }
    return NULL;
}

static void start_drain_support(void) {
    const char *path = getenv(DRAIN_FILE_VARIABLE);
    if (path == NULL || *path == '\0')
        return;
    if (strlen(path) >= sizeof(drain_file))
        refuse(DRAIN_FILE_VARIABLE " is too long");
    strcpy(drain_file, path);
    pthread_t thread;
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = request_drain;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sem_init(&drain_requested, 0, 0) != 0 || pthread_create(&thread, NULL, drain, NULL) != 0 ||
        sigaction(DRAIN_SIGNAL, &action, NULL) != 0 || sigaction(SHUTDOWN_DRAIN_SIGNAL, &action, NULL) != 0)
        refuse("cannot set up draining (" DRAIN_FILE_VARIABLE ")");
    pthread_detach(thread);
}

/* A raw BYTES tensor (gRPC raw_input_contents, HTTP's binary tensor extension, system shared memory) whose last string
 * says it is longer than the bytes left passes Triton 2.51's own checks (the count of strings, each 4-byte length).
 * Triton's Python backend finds it while it reads the inputs of a whole batch, before execute() runs, and fails EVERY
 * request of that batch with it: one client's malformed request failed other clients' good ones. The front end's
 * requests are refused here instead, alone and at once, with the Python backend's words (INVALID_ARG: HTTP 400, gRPC
 * INVALID_ARGUMENT): AddInput remembers each BYTES input of a tracked request, AppendInputData its buffers (CPU memory;
 * or AppendInputDataWithBufferAttributes, which the gRPC front end uses: its size and memory type read from them; the
 * front end keeps them until the request is released), ServerInferAsync walks the strings across them. An input it
 * cannot see whole (more than MAX_INPUT_SEGMENTS buffers, GPU memory) is left to Triton. */
typedef void *(*add_input_function)(void *, const char *, int, const int64_t *, uint64_t);
typedef void *(*append_input_function)(void *, const char *, const void *, size_t, int, int64_t);
typedef void *(*append_input_policy_function)(void *, const char *, const void *, size_t, int, int64_t, const char *);
typedef void *(*append_input_attributes_function)(void *, const char *, const void *, void *);
typedef void *(*attribute_size_function)(void *, size_t *);
typedef void *(*attribute_memory_function)(void *, int *);
typedef void (*error_delete_function)(void *);
#define TRITONSERVER_MEMORY_CPU 0
#define TRITONSERVER_MEMORY_CPU_PINNED 1

static struct string_input *string_input_of(struct tracked_request *tracked, const char *name, int add) {
    if (tracked == NULL || name == NULL || strlen(name) >= MAX_INPUT_NAME)
        return NULL;
    if (tracked->strings == NULL) {
        if (!add || (tracked->strings = calloc(1, sizeof(*tracked->strings))) == NULL)
            return NULL;
    }
    struct string_inputs *strings = tracked->strings;
    for (int i = 0; i < strings->count; i++)
        if (strcmp(strings->input[i].name, name) == 0)
            return &strings->input[i];
    if (!add || strings->count == MAX_STRING_INPUTS)
        return NULL;
    struct string_input *input = &strings->input[strings->count++];
    strcpy(input->name, name);
    input->segments = 0;
    return input;
}

static void add_segment(struct string_input *input, const void *base, size_t size, int memory_type) {
    if (input == NULL || input->segments < 0)
        return;
    if ((memory_type != TRITONSERVER_MEMORY_CPU && memory_type != TRITONSERVER_MEMORY_CPU_PINNED) ||
        input->segments == MAX_INPUT_SEGMENTS || (base == NULL && size > 0)) {
        input->segments = -1;
        return;
    }
    input->base[input->segments] = base;
    input->size[input->segments++] = size;
}

/* The byte at `offset` of the input's buffers taken end to end (offset < their total). */
static unsigned char input_byte(const struct string_input *input, size_t offset) {
    int i = 0;
    while (offset >= input->size[i])
        offset -= input->size[i++];
    return input->base[i][offset];
}

/* 1, with the Python backend's words in `message`, when a string of `input` runs past its bytes; else 0. */
static int string_problem(const struct string_input *input, char *message, size_t length) {
    if (input->segments <= 0)
        return 0;
    size_t total = 0, offset = 0;
    for (int i = 0; i < input->segments; i++)
        total += input->size[i];
    while (offset < total) {
        if (total - offset < 4) {
            snprintf(message, length, "incomplete string length indicator for inference input '%s', expecting 4 bytes "
                     "but only %zu bytes available", input->name, total - offset);
            return 1;
        }
        uint32_t size = (uint32_t)input_byte(input, offset) | (uint32_t)input_byte(input, offset + 1) << 8 |
                        (uint32_t)input_byte(input, offset + 2) << 16 | (uint32_t)input_byte(input, offset + 3) << 24;
        if (size > total - offset - 4) {
            snprintf(message, length, "incomplete string data for inference input '%s', expecting string of length %u "
                     "but only %zu bytes available", input->name, size, total - offset - 4);
            return 1;
        }
        offset += 4 + (size_t)size;
    }
    return 0;
}

void *TRITONSERVER_InferenceRequestAddInput(void *request, const char *name, int datatype, const int64_t *shape,
                                            uint64_t dim_count) {
    static void *next;
    add_input_function real = (add_input_function)next_definition(&next, "TRITONSERVER_InferenceRequestAddInput");
    if (real == NULL)
        return NULL;
    void *error = real(request, name, datatype, shape, dim_count);
    if (error == NULL && datatype == TRITONSERVER_TYPE_BYTES)
        string_input_of(frontend_request(request, __builtin_return_address(0)), name, 1);
    return error;
}

void *TRITONSERVER_InferenceRequestAppendInputData(void *request, const char *name, const void *base, size_t byte_size,
                                                   int memory_type, int64_t memory_type_id) {
    static void *next;
    append_input_function real =
        (append_input_function)next_definition(&next, "TRITONSERVER_InferenceRequestAppendInputData");
    if (real == NULL)
        return NULL;
    void *error = real(request, name, base, byte_size, memory_type, memory_type_id);
    if (error == NULL)
        add_segment(string_input_of(frontend_request(request, __builtin_return_address(0)), name, 0), base, byte_size,
                    memory_type);
    return error;
}

void *TRITONSERVER_InferenceRequestAppendInputDataWithHostPolicy(void *request, const char *name, const void *base,
                                                                 size_t byte_size, int memory_type,
                                                                 int64_t memory_type_id, const char *host_policy) {
    static void *next;
    append_input_policy_function real = (append_input_policy_function)next_definition(
        &next, "TRITONSERVER_InferenceRequestAppendInputDataWithHostPolicy");
    if (real == NULL)
        return NULL;
    void *error = real(request, name, base, byte_size, memory_type, memory_type_id, host_policy);
    if (error == NULL)
        add_segment(string_input_of(frontend_request(request, __builtin_return_address(0)), name, 0), base, byte_size,
                    memory_type);
    return error;
}

void *TRITONSERVER_InferenceRequestAppendInputDataWithBufferAttributes(void *request, const char *name,
                                                                       const void *base, void *attributes) {
    static void *next;
    append_input_attributes_function real = (append_input_attributes_function)next_definition(
        &next, "TRITONSERVER_InferenceRequestAppendInputDataWithBufferAttributes");
    if (real == NULL)
        return NULL;
    void *error = real(request, name, base, attributes);
    struct string_input *input = string_input_of(frontend_request(request, __builtin_return_address(0)), name, 0);
    if (error != NULL || input == NULL)
        return error;
    static void *size_next, *memory_next, *delete_next;
    attribute_size_function size_of = (attribute_size_function)next_definition(
        &size_next, "TRITONSERVER_BufferAttributesByteSize");
    attribute_memory_function memory_of = (attribute_memory_function)next_definition(
        &memory_next, "TRITONSERVER_BufferAttributesMemoryType");
    error_delete_function delete_error = (error_delete_function)next_definition(&delete_next, "TRITONSERVER_ErrorDelete");
    size_t size = 0;
    int memory_type = -1;
    void *size_error = size_of != NULL ? size_of(attributes, &size) : NULL;
    void *memory_error = memory_of != NULL ? memory_of(attributes, &memory_type) : NULL;
    if (size_of == NULL || memory_of == NULL || size_error != NULL || memory_error != NULL)
        input->segments = -1; /* what the buffer is cannot be told: left to Triton */
    else
        add_segment(input, base, size, memory_type);
    if (delete_error != NULL && size_error != NULL)
        delete_error(size_error);
    if (delete_error != NULL && memory_error != NULL)
        delete_error(memory_error);
    return error;
}

void *TRITONSERVER_ServerInferAsync(void *server, void *request, void *trace) {
    if (real_infer_async == NULL)
        resolve_admission_functions();
    if (real_infer_async == NULL)
        return NULL;
    if (atomic_load(&draining) && called_by_the_frontend(__builtin_return_address(0)))
        return real_error_new != NULL
                   ? real_error_new(TRITONSERVER_ERROR_UNAVAILABLE,
                                    atomic_load(&shutting_down) ? SHUTTING_DOWN_MESSAGE : RESTARTING_MESSAGE)
                   : NULL;
    struct tracked_request *tracked = frontend_request(request, __builtin_return_address(0));
    char unreadable[MAX_INPUT_NAME + 160];
    if (tracked != NULL && tracked->strings != NULL)
        for (int i = 0; i < tracked->strings->count; i++)
            if (string_problem(&tracked->strings->input[i], unreadable, sizeof(unreadable)))
                return real_error_new != NULL ? real_error_new(TRITONSERVER_ERROR_INVALID_ARG, unreadable) : NULL;
    if (max_in_flight <= 0 || tracked == NULL || tracked->callback == NULL || atomic_load(&tracked->counted))
        return real_infer_async(server, request, trace);
    struct model_count *model = tracked->model;
    int in_flight = atomic_load(&model->in_flight);
    do {
        if (in_flight >= max_in_flight) {
            char message[MAX_MODEL_NAME + 256];
            snprintf(message, sizeof(message),
                     "Exceeds maximum queue size: model '%s' has %d requests in flight, the most this server admits "
                     "(inferforge admission control; `inferforge serve --max-queue-size` sets it); retry later",
                     model->name, max_in_flight);
            return real_error_new != NULL ? real_error_new(TRITONSERVER_ERROR_UNAVAILABLE, message) : NULL;
        }
    } while (!atomic_compare_exchange_weak(&model->in_flight, &in_flight, in_flight + 1));
    atomic_store(&tracked->counted, 1); /* before the call: the release may come on another thread before it returns */
    void *error = real_infer_async(server, request, trace);
    if (error != NULL)
        uncount(tracked); /* failed at once: no release callback will run, and the front end deletes the request */
    /* On success `tracked` may already be freed (released and deleted on another thread): not touched. */
    return error;
}

/* A client's per-request `timeout` and `priority` (tritonclient's infer(timeout=, priority=), HTTP `parameters`
 * {"timeout": us, "priority": n}, the gRPC parameters of the same names).
 *
 * Triton applies a request's timeout as the queue timeout of the model it waits at, where that model's queue policy has
 * allow_timeout_override (inferforge's configs have it). Triton 2.51's ensemble gives its steps' requests no timeout at
 * all, so a timeout sent to an ensemble was accepted and did nothing. For the front end's requests to the models
 * INFERFORGE_ENSEMBLES names, a timeout other than 0 is refused at once with INVALID_ARG (HTTP 400, gRPC
 * INVALID_ARGUMENT) saying so; the same timeout sent to a model that is not an ensemble is Triton's.
 *
 * Triton passes an ensemble request's priority on to its steps, where a priority of 0, or above the step's
 * priority_levels, silently becomes the default level. With INFERFORGE_PRIORITY_LEVELS (the levels of every model of
 * the repository) a priority above it is refused the same way, naming the levels; 0 stays "the default". */
#define PRIORITY_LEVELS_VARIABLE "INFERFORGE_PRIORITY_LEVELS"
#define TRITONSERVER_ERROR_INVALID_ARG_CODE 3

typedef void *(*set_timeout_function)(void *, uint64_t);
typedef void *(*set_priority_function)(void *, uint32_t);
typedef void *(*set_priority64_function)(void *, uint64_t);

static unsigned long long priority_levels; /* 0: priorities not checked */

static void read_priority_levels(void) {
    const char *value = getenv(PRIORITY_LEVELS_VARIABLE);
    if (value == NULL || *value == '\0')
        return;
    char *end;
    unsigned long long levels = strtoull(value, &end, 10);
    if (*end != '\0' || levels > 1000000ULL)
        refuse(PRIORITY_LEVELS_VARIABLE " is not a count of priority levels (0 = not checked)");
    priority_levels = levels;
}

static void *invalid_argument(const char *message) {
    return real_error_new != NULL ? real_error_new(TRITONSERVER_ERROR_INVALID_ARG_CODE, message) : NULL;
}

void *TRITONSERVER_InferenceRequestSetTimeoutMicroseconds(void *request, uint64_t timeout_us) {
    static void *next;
    set_timeout_function real =
        (set_timeout_function)next_definition(&next, "TRITONSERVER_InferenceRequestSetTimeoutMicroseconds");
    if (real == NULL)
        return NULL; /* not in tritonserver: nothing calls this */
    struct tracked_request *tracked = timeout_us != 0 && ensembles[0] != '\0'
                                          ? frontend_request(request, __builtin_return_address(0))
                                          : NULL;
    if (tracked != NULL && tracked->model->ensemble) {
        char message[MAX_MODEL_NAME + 512];
        snprintf(message, sizeof(message),
                 "the request's 'timeout' (%llu microseconds) cannot be applied: '%s' is an ensemble, whose steps "
                 "Triton 2.51 runs without a timeout; leave it out and bound the wait in the client (tritonclient's "
                 "client_timeout or network_timeout, a read timeout in an HTTP library), or send the request to a "
                 "model that is not an ensemble, which applies it as its queue timeout",
                 (unsigned long long)timeout_us, tracked->model->name);
        return invalid_argument(message);
    }
    return real(request, timeout_us);
}

/* The error for `priority` from the front end (the caller at `return_address`), or NULL when it is allowed. */
static void *refused_priority(unsigned long long priority, const void *return_address) {
    if (priority_levels == 0 || priority <= priority_levels || !called_by_the_frontend(return_address))
        return NULL;
    char message[512];
    snprintf(message, sizeof(message),
             "priority %llu is not one of this server's %llu levels: send 1 (served first) to %llu (served last), or "
             "0 (or no priority) for the default level",
             priority, priority_levels, priority_levels);
    return invalid_argument(message);
}

void *TRITONSERVER_InferenceRequestSetPriority(void *request, uint32_t priority) {
    static void *next;
    set_priority_function real = (set_priority_function)next_definition(&next, "TRITONSERVER_InferenceRequestSetPriority");
    if (real == NULL)
        return NULL;
    void *refused = refused_priority(priority, __builtin_return_address(0));
    return refused != NULL ? refused : real(request, priority);
}

void *TRITONSERVER_InferenceRequestSetPriorityUInt64(void *request, uint64_t priority) {
    static void *next;
    set_priority64_function real =
        (set_priority64_function)next_definition(&next, "TRITONSERVER_InferenceRequestSetPriorityUInt64");
    if (real == NULL)
        return NULL;
    void *refused = refused_priority(priority, __builtin_return_address(0));
    return refused != NULL ? refused : real(request, priority);
}

/* The server metadata (GET /v2, gRPC ServerMetadata) lists the protocol extensions a client may use. Triton 2.51 lists
 * all it has, also those its --http-restricted-api / --grpc-restricted-protocol answer with 403 / PERMISSION_DENIED
 * without the admin key (model_repository, system_shared_memory, logging, trace...): a client that reads the list and
 * then uses one is refused. INFERFORGE_HIDDEN_EXTENSIONS (comma-separated names, set by inferforge from the restricted
 * APIs) are left out of the list the front end (the executable) gets, for both protocols (the gRPC front end reads the
 * same JSON message); everything else sees Triton's list. */
#define HIDDEN_EXTENSIONS_VARIABLE "INFERFORGE_HIDDEN_EXTENSIONS"

static char hidden_extensions[1024]; /* ",name,name," or empty */

typedef void *(*server_metadata_function)(void *, void **);
typedef void *(*serialize_function)(void *, const char **, size_t *);
typedef void *(*message_new_function)(void **, const char *, size_t);
typedef void *(*message_delete_function)(void *);

static void read_hidden_extensions(void) {
    read_name_list(HIDDEN_EXTENSIONS_VARIABLE, hidden_extensions, sizeof(hidden_extensions));
}

static int extension_hidden(const char *name, size_t length) {
    return listed(hidden_extensions, name, length);
}

/* `json` (length `length`) with the hidden names left out of its "extensions" array, on the heap; NULL when there is
 * nothing to leave out or the text is not as expected. */
static char *without_hidden_extensions(const char *json, size_t length) {
    const char *key = memmem(json, length, "\"extensions\"", 12);
    if (key == NULL)
        return NULL;
    const char *at = key + 12, *end = json + length;
    while (at < end && (*at == ' ' || *at == ':' || *at == '\n' || *at == '\t' || *at == '\r'))
        at++;
    if (at >= end || *at != '[')
        return NULL;
    const char *close = memchr(at, ']', (size_t)(end - at));
    if (close == NULL)
        return NULL;
    char *result = malloc(length + 1);
    if (result == NULL)
        return NULL;
    size_t out = (size_t)(at + 1 - json);
    memcpy(result, json, out);
    int kept = 0, dropped = 0;
    for (const char *item = at + 1; item < close;) {
        const char *open = memchr(item, '"', (size_t)(close - item));
        if (open == NULL)
            break;
        const char *stop = memchr(open + 1, '"', (size_t)(close - open - 1));
        if (stop == NULL || memchr(open, '\\', (size_t)(stop - open)) != NULL) {
            free(result);
            return NULL;
        }
        if (extension_hidden(open + 1, (size_t)(stop - open - 1))) {
            dropped++;
        } else {
            if (kept++)
                result[out++] = ',';
            memcpy(result + out, open, (size_t)(stop - open + 1));
            out += (size_t)(stop - open + 1);
        }
        item = stop + 1;
    }
    if (dropped == 0) {
        free(result);
        return NULL;
    }
    memcpy(result + out, close, (size_t)(end - close));
    out += (size_t)(end - close);
    result[out] = '\0';
    return result;
}

void *TRITONSERVER_ServerMetadata(void *server, void **metadata) {
    static server_metadata_function real;
    static serialize_function serialize;
    static message_new_function message_new;
    static message_delete_function message_delete;
    if (real == NULL) {
        real = (server_metadata_function)dlsym(RTLD_NEXT, "TRITONSERVER_ServerMetadata");
        serialize = (serialize_function)dlsym(RTLD_NEXT, "TRITONSERVER_MessageSerializeToJson");
        message_new = (message_new_function)dlsym(RTLD_NEXT, "TRITONSERVER_MessageNewFromSerializedJson");
        message_delete = (message_delete_function)dlsym(RTLD_NEXT, "TRITONSERVER_MessageDelete");
        resolve_parameter_functions();
    }
    if (real == NULL)
        return NULL; /* not in tritonserver: nothing calls this */
    void *error = real(server, metadata);
    if (error != NULL || hidden_extensions[0] == '\0' || metadata == NULL || *metadata == NULL || serialize == NULL ||
        message_new == NULL || message_delete == NULL || !called_by_the_frontend(__builtin_return_address(0)))
        return error;
    const char *json;
    size_t length;
    void *failed = serialize(*metadata, &json, &length);
    if (failed != NULL) {
        if (real_error_delete != NULL)
            real_error_delete(failed);
        return NULL;
    }
    char *shown = without_hidden_extensions(json, length);
    if (shown == NULL)
        return NULL;
    void *replacement = NULL;
    failed = message_new(&replacement, shown, strlen(shown)); /* the message keeps its own copy */
    free(shown);
    if (failed != NULL || replacement == NULL) {
        if (failed != NULL && real_error_delete != NULL)
            real_error_delete(failed);
        return NULL;
    }
    failed = message_delete(*metadata);
    if (failed != NULL && real_error_delete != NULL)
        real_error_delete(failed);
    *metadata = replacement;
    return NULL;
}

/* The HTTP wire, fixed where Triton 2.51's front end (libevhtp and libevent, linked into the executable) gets it
 * wrong for generic clients. The wrappers below act on the executable's own calls only (gRPC reads with recvmsg and is
 * not touched), and keep a little state per connection (by file descriptor, reset when a connection is accepted).
 *
 * - An HTTP/1.0 keep-alive client (ab -k, health checkers and load balancers that speak HTTP/1.0) waited forever on
 *   the empty replies (/v2/health/ready, /v2/health/live, /v2/models/<m>/ready): libevhtp adds Content-Length to an
 *   HTTP/1.1 reply always, to an HTTP/1.0 one only when its body is not empty, and keeps the connection open for a
 *   client that asked "Connection: keep-alive". writev adds "Content-Length: 0" to each HTTP/1.0 reply head it writes
 *   that keeps the connection open and says no length (libevhtp gives every such reply with a body its length, and a
 *   reply it streams closes the connection instead: "Connection: keep-alive" is not in its head).
 * - Pipelined HTTP/1.1 requests (several sent before the first answer) got the first answer only: the front end
 *   parses the first request of what libevent read, and the others, already read from the socket, wait forever.
 *   readv looks at what the socket holds (MSG_PEEK) and, when it holds a complete request (a head, and the body its
 *   Content-Length says) with more bytes after it, reads that request only: the rest stays in the socket and is read
 *   after the answer. A chunked request body, or a request longer than what is looked at, is read as it is.
 * - HEAD (uptime monitors, `curl -I`, HTTP libraries checking a URL) was answered 405 WITH a body, which a client
 *   reads as the start of its next response on a keep-alive connection. A HEAD request (without a body) on a
 *   connection with no answer outstanding is read as GET (Triton answers only GET there) and its reply is written
 *   without its body: the GET's status and headers, Content-Length included, as HTTP says a HEAD reply is.
 * - A 405 (a method the path does not take: GET on /infer, DELETE anywhere) named no Allow header, which RFC 9110
 *   requires of it: writev adds the methods the request's path takes, from the request line readv saw (remembered per
 *   request, MAX_PIPELINED deep): "GET, HEAD, OPTIONS" on health, metadata, config and statistics; "POST, OPTIONS" on
 *   infer, generate and the repository and shared-memory actions; "GET, HEAD, POST, OPTIONS" on the logging and trace
 *   settings. A path Triton does not serve is its 400 and is left as it is.
 * - OPTIONS (RFC 9110 section 9.3.7, and a browser's CORS preflight) was that same 405: its reply is written as
 *   "204 No Content" with the path's Allow header and without the error body. No CORS header is added: a web page of
 *   another origin still cannot read the server's answers (the browser refuses a preflight answered without
 *   Access-Control-Allow-Origin), which is what a server on loopback should give any page a browser runs
 *   (RELIABILITY.md section 7).
 * - /generate and /generate_stream answer in chunked encoding, also to an HTTP/1.0 client (nginx's default
 *   proxy_http_version, ab, health checkers), which has no chunked encoding and reads the framing as the body. To an
 *   HTTP/1.0 client writev writes that reply unchunked: its head loses "Transfer-Encoding" and any "Connection" header
 *   and gets "Connection: close", the chunk framing is left out of the body (over as many writes as it takes), and after
 *   the last chunk the connection's sending side is shut, so the body ends where the connection does, as HTTP/1.0 says.
 * - While draining (see above) writev adds "Connection: close" to each HTTP/1.1 reply head that names no Connection.
 * - An error reply's body is JSON ({"error": ...}), but Triton 2.51 labels many of them "Content-Type: text/plain"
 *   (a model's error, the restricted APIs' 403, a path it does not serve), and clients that read the error from a JSON
 *   reply only (KServe's InferenceRESTClient) lost the message: writev makes the type of such a reply (status 400 or
 *   more, a body that starts with {"error": in the bytes looked at) application/json.
 * Added bytes are sent with the reply; a partial write that stops inside them finishes them before returning, so the
 * caller's count of its own bytes stays right; removed bytes count as written. */
#define ADDED_LENGTH "Content-Length: 0\r\n"
#define ADDED_CLOSE "Connection: close\r\n"
#define NO_CONTENT_STATUS "204 No Content"
#define JSON_TYPE "Content-Type: application/json\r\n"
#define ERROR_BODY "{\"error\":"
#define ERROR_BODY_LENGTH (sizeof(ERROR_BODY) - 1)
#define SCANNED_BYTES 65536 /* replies that start further into one write are not looked at */
#define PEEKED_BYTES 16384
#define MAX_EDITS 32
#define EDITS_PER_REPLY 6 /* the most edits one reply head takes */
#define FINISH_TIMEOUT_MS 5000
#define FINISH_LIMIT 4096 /* caller's bytes a short write left before a removal, sent by the wrapper itself */
#define MAX_TRACKED_FD 65536
#define MAX_PIPELINED 8 /* requests of a connection read ahead of their replies whose Allow is remembered */
#define MAX_IOVEC 1024

typedef ssize_t (*writev_function)(int, const struct iovec *, int);
typedef ssize_t (*readv_function)(int, const struct iovec *, int);
typedef int (*accept4_function)(int, struct sockaddr *, socklen_t *, int);
typedef int (*accept_function)(int, struct sockaddr *, socklen_t *);

/* The methods a request path takes (the Allow header of its 405), ALLOW_UNKNOWN for a path Triton does not serve. */
enum allowed { ALLOW_UNKNOWN, ALLOW_GET, ALLOW_POST, ALLOW_GET_POST };
static const char *const allow_headers[] = {NULL, "Allow: GET, HEAD, OPTIONS\r\n", "Allow: POST, OPTIONS\r\n",
                                            "Allow: GET, HEAD, POST, OPTIONS\r\n"};

/* Where an HTTP/1.0 reply's chunked body is, as writev leaves its framing out. */
enum chunk_state { CHUNKS_OFF, CHUNK_SIZE, CHUNK_EXTENSION, CHUNK_DATA, CHUNK_DATA_END, CHUNK_TRAILER,
                   CHUNK_TRAILER_LINE, CHUNKS_DONE };

struct unchunking {
    uint8_t state;      /* enum chunk_state */
    uint64_t left;      /* CHUNK_SIZE: the size read so far; CHUNK_DATA: the chunk's bytes still to come */
};

/* Per connection, touched by the one front-end thread that serves it. */
struct connection_state {
    uint32_t requests;   /* request heads read */
    uint32_t replies;    /* final reply heads written */
    uint32_t strip;      /* the number of the reply whose body is not written (a HEAD's), 0: none */
    uint8_t untracked;   /* replies could not be followed (a chunked one): no HEAD is read as GET any more */
    size_t drop;         /* body bytes of a HEAD's or an OPTIONS's reply still to leave out of the next writes */
    uint8_t allow[MAX_PIPELINED];   /* by request number modulo MAX_PIPELINED: enum allowed of its path */
    uint8_t options[MAX_PIPELINED]; /* ... and whether it is an OPTIONS */
    struct unchunking chunks;       /* an HTTP/1.0 reply being written unchunked */
};
static struct connection_state connections[MAX_TRACKED_FD];

static struct connection_state *connection_of(int fd) {
    return fd >= 0 && fd < MAX_TRACKED_FD ? &connections[fd] : NULL;
}

struct edit {
    size_t offset;    /* in the caller's bytes */
    size_t removed;   /* caller's bytes left out from there */
    const char *text; /* written there instead (ADDED_LENGTH, ADDED_CLOSE, an Allow header, ...), or NULL */
};

/* The header line `name` (with its colon) of the head `head` (length `length`, each line ending in CRLF, no final
 * blank line), as the offset where it starts, its length without CRLF in *line_length; -1 when the head has none. */
static long header_line(const char *head, size_t length, const char *name, size_t *line_length) {
    size_t name_length = strlen(name);
    for (const char *line = head; line < head + length;) {
        const char *end = memmem(line, (size_t)(head + length - line), "\r\n", 2);
        size_t this_length = end != NULL ? (size_t)(end - line) : (size_t)(head + length - line);
        if (this_length >= name_length && strncasecmp(line, name, name_length) == 0) {
            if (line_length != NULL)
                *line_length = this_length;
            return (long)(line - head);
        }
        line += this_length + 2;
    }
    return -1;
}

/* Whether the head has the header `name`, and when `value` is given, whether its value starts with `value`. */
static int head_has(const char *head, size_t length, const char *name, const char *value) {
    size_t line_length;
    long at = header_line(head, length, name, &line_length);
    if (at < 0)
        return 0;
    if (value == NULL)
        return 1;
    const char *from = head + at + strlen(name), *end = head + at + line_length;
    while (from < end && (*from == ' ' || *from == '\t'))
        from++;
    return (size_t)(end - from) >= strlen(value) && strncasecmp(from, value, strlen(value)) == 0;
}

/* The Content-Length of the head, or -1 when it has none. */
static long long content_length(const char *head, size_t length) {
    long at = header_line(head, length, "Content-Length:", NULL);
    return at < 0 ? -1 : strtoll(head + at + 15, NULL, 10);
}

/* The methods the request target `path` (`length` bytes, a query after '?' ignored) takes in Triton's HTTP API. */
static uint8_t allowed_for(const char *path, size_t length) {
    const char *query = memchr(path, '?', length);
    if (query != NULL)
        length = (size_t)(query - path);
    if (length == 1 && path[0] == '*')
        return ALLOW_GET_POST; /* OPTIONS *: the server as a whole */
    if (length < 3 || memcmp(path, "/v2", 3) != 0 || (length > 3 && path[3] != '/'))
        return ALLOW_UNKNOWN;
    static const char *const posted[] = {"/infer", "/generate", "/generate_stream", "/index",
                                         "/load",  "/unload",   "/register",        "/unregister"};
    static const char *const both[] = {"/trace/setting", "/v2/logging"};
    for (size_t i = 0; i < sizeof(posted) / sizeof(posted[0]); i++)
        if (length >= strlen(posted[i]) && memcmp(path + length - strlen(posted[i]), posted[i], strlen(posted[i])) == 0)
            return ALLOW_POST;
    for (size_t i = 0; i < sizeof(both) / sizeof(both[0]); i++)
        if (length >= strlen(both[i]) && memcmp(path + length - strlen(both[i]), both[i], strlen(both[i])) == 0)
            return ALLOW_GET_POST;
    return ALLOW_GET;
}

/* What one write covers: its first `limit` caller bytes, with `edits`; `whole`: those bytes are all sent before the
 * wrapper returns (the head of a reply written unchunked, which the next write must not start inside);
 * `unchunk_after`: the chunked body of an HTTP/1.0 reply follows them. */
struct write_plan {
    size_t limit;
    int whole;
    int unchunk_after;
};

/* Adds `edit` to `found` (of `*count`), merged into the last one when both remove and they touch; 0 when full. */
static int add_edit(struct edit *found, int *count, int most, struct edit edit) {
    if (*count > 0 && edit.text == NULL && found[*count - 1].text == NULL &&
        found[*count - 1].offset + found[*count - 1].removed == edit.offset) {
        found[*count - 1].removed += edit.removed;
        return 1;
    }
    if (*count >= most)
        return 0;
    found[(*count)++] = edit;
    return 1;
}

/* The edits of one write to `fd`: `data` holds its first `length` bytes of `total`. Follows the replies from the start
 * of the write as long as each one's extent is known, counting the final ones on the connection. */
static struct write_plan edits_for(int fd, const char *data, size_t length, size_t total, struct edit found[MAX_EDITS],
                                   int *count) {
    struct connection_state *connection = connection_of(fd);
    struct write_plan plan = {total, 0, 0};
    int closing = atomic_load(&draining);
    size_t at = 0;
    while (*count <= MAX_EDITS - EDITS_PER_REPLY && length - at > 9 && strncmp(data + at, "HTTP/1.", 7) == 0) {
        const char *end = memmem(data + at, length - at, "\r\n\r\n", 4);
        if (end == NULL)
            break;
        const char *head = data + at;
        size_t head_length = (size_t)(end - head) + 2; /* the status line and headers, each ending in CRLF */
        size_t body_at = (size_t)(end - data) + 4;
        int http10 = head[7] == '0', status = atoi(head + 9);
        long long body = content_length(head, head_length);
        int chunked = head_has(head, head_length, "Transfer-Encoding:", NULL);
        if (http10 && chunked && status >= 200 && connection != NULL) {
            if (at > 0) { /* this write goes up to that reply; the next one starts with it */
                plan.limit = at;
                break;
            }
            size_t line_length;
            long line = header_line(head, head_length, "Transfer-Encoding:", &line_length);
            add_edit(found, count, MAX_EDITS, (struct edit){at + (size_t)line, line_length + 2, NULL});
            line = header_line(head, head_length, "Connection:", &line_length);
            if (line >= 0)
                add_edit(found, count, MAX_EDITS, (struct edit){at + (size_t)line, line_length + 2, NULL});
            add_edit(found, count, MAX_EDITS, (struct edit){at + head_length, 0, ADDED_CLOSE});
            connection->replies++;
            connection->untracked = 1;
            plan = (struct write_plan){body_at, 1, 1};
            break;
        }
        uint32_t reply = 0;
        if (status >= 200 && connection != NULL) {
            reply = ++connection->replies;
            if (chunked)
                connection->untracked = 1;
        }
        if (closing && !http10 && status >= 200 && !head_has(head, head_length, "Connection:", NULL))
            add_edit(found, count, MAX_EDITS, (struct edit){at + head_length, 0, ADDED_CLOSE});
        if (body < 0 && status >= 100 && status < 200) {
            body = 0; /* 100 Continue: no body */
        } else if (body < 0 && http10 && !chunked && head_has(head, head_length, "Connection:", "keep-alive")) {
            add_edit(found, count, MAX_EDITS, (struct edit){at + head_length, 0, ADDED_LENGTH});
            body = 0;
        }
        int strip = 0; /* the body is left out: a HEAD's reply, or an OPTIONS's turned into 204 */
        if (reply != 0 && connection->strip == reply) {
            connection->strip = 0;
            strip = 1;
        }
        uint8_t allow = ALLOW_UNKNOWN, options = 0;
        if (status == 405 && reply != 0 && connection->requests - reply < MAX_PIPELINED) {
            allow = connection->allow[reply % MAX_PIPELINED];
            options = connection->options[reply % MAX_PIPELINED];
        }
        if (allow != ALLOW_UNKNOWN && options && !strip) { /* "405 Method Not Allowed" -> "204 No Content", no body */
            const char *status_end = memmem(head, head_length, "\r\n", 2);
            add_edit(found, count, MAX_EDITS, (struct edit){at + 9, (size_t)(status_end - head) - 9, NO_CONTENT_STATUS});
            size_t line_length;
            long line = header_line(head, head_length, "Content-Length:", &line_length);
            if (line >= 0)
                add_edit(found, count, MAX_EDITS,
                         (struct edit){at + (size_t)line, line_length + 2, allow_headers[allow]});
            else
                add_edit(found, count, MAX_EDITS, (struct edit){at + head_length, 0, allow_headers[allow]});
            line = header_line(head, head_length, "Content-Type:", &line_length);
            if (line >= 0) /* a 204 has no content, nor a type of it */
                add_edit(found, count, MAX_EDITS, (struct edit){at + (size_t)line, line_length + 2, NULL});
            strip = 1;
        } else {
            if (allow != ALLOW_UNKNOWN)
                add_edit(found, count, MAX_EDITS, (struct edit){at + head_length, 0, allow_headers[allow]});
            /* An error's JSON body ({"error": ...}) that the head calls text/plain: its type said as it is. */
            size_t line_length;
            long line = header_line(head, head_length, "Content-Type:", &line_length);
            if (status >= 400 && body >= (long long)ERROR_BODY_LENGTH && length - body_at >= ERROR_BODY_LENGTH &&
                memcmp(data + body_at, ERROR_BODY, ERROR_BODY_LENGTH) == 0 && line >= 0 &&
                head_has(head, head_length, "Content-Type:", "text/plain"))
                add_edit(found, count, MAX_EDITS, (struct edit){at + (size_t)line, line_length + 2, JSON_TYPE});
        }
        if (strip && body > 0) { /* left out, here and in the next writes */
            size_t here = (unsigned long long)body <= total - body_at ? (size_t)body : total - body_at;
            add_edit(found, count, MAX_EDITS, (struct edit){body_at, here, NULL});
            connection->drop = (size_t)body - here;
        }
        if (body < 0 || (unsigned long long)body > length - body_at)
            break; /* a body whose end the head does not say, or that ends beyond what was looked at */
        at = body_at + (size_t)body;
    }
    /* In offset order (an Allow header and a "Connection: close" may be added at the same place: kept in turn). */
    for (int i = 1; i < *count; i++)
        for (int j = i; j > 0 && found[j - 1].offset > found[j].offset; j--) {
            struct edit swapped = found[j];
            found[j] = found[j - 1];
            found[j - 1] = swapped;
        }
    return plan;
}

/* The byte at caller offset `offset` of `iov`; `*piece`/`*piece_start` remember where the last one was (offsets only
 * grow between calls). */
static unsigned char byte_at(const struct iovec *iov, int iovcnt, size_t offset, int *piece, size_t *piece_start) {
    while (*piece < iovcnt && offset >= *piece_start + iov[*piece].iov_len) {
        *piece_start += iov[*piece].iov_len;
        (*piece)++;
    }
    return ((const unsigned char *)iov[*piece].iov_base)[offset - *piece_start];
}

/* Follows a chunked body through the caller's bytes [from, to) of `iov` from `chunks`, and, with `found`, adds an edit
 * leaving out its framing (size lines and their extensions, the CRLF after each chunk's data, the last chunk and its
 * trailer). Returns where it stopped: `to`, or the first byte of framing `found` had no room for (the write then goes
 * that far only). Bytes after the end of the body are not looked at. */
static size_t unchunk(struct unchunking *chunks, const struct iovec *iov, int iovcnt, size_t from, size_t to,
                      struct edit *found, int *count) {
    int piece = 0;
    size_t piece_start = 0, at = from;
    while (at < to && chunks->state != CHUNKS_DONE && chunks->state != CHUNKS_OFF) {
        if (chunks->state == CHUNK_DATA) { /* the chunk's own bytes: kept */
            size_t run = to - at < chunks->left ? to - at : (size_t)chunks->left;
            chunks->left -= run;
            at += run;
            if (chunks->left == 0)
                chunks->state = CHUNK_DATA_END;
            continue;
        }
        if (found != NULL && !add_edit(found, count, MAX_EDITS, (struct edit){at, 1, NULL}))
            return at;
        unsigned char c = byte_at(iov, iovcnt, at++, &piece, &piece_start);
        switch (chunks->state) {
        case CHUNK_SIZE:
        case CHUNK_EXTENSION:
            if (c == '\n') {
                chunks->state = chunks->left == 0 ? CHUNK_TRAILER : CHUNK_DATA;
            } else if (chunks->state == CHUNK_SIZE && ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'))) {
                if (chunks->left >> 56) { /* not a size: left as it is from here */
                    chunks->state = CHUNKS_OFF;
                    break;
                }
                chunks->left = chunks->left * 16 + (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
            } else {
                chunks->state = CHUNK_EXTENSION; /* ";name=value", white space, the CR */
            }
            break;
        case CHUNK_DATA_END: /* the CRLF after a chunk's data */
            if (c == '\n') {
                chunks->state = CHUNK_SIZE;
                chunks->left = 0;
            }
            break;
        case CHUNK_TRAILER: /* at the start of a trailer line: an empty one ends the body */
            if (c == '\n')
                chunks->state = CHUNKS_DONE;
            else if (c != '\r')
                chunks->state = CHUNK_TRAILER_LINE;
            break;
        case CHUNK_TRAILER_LINE:
            if (c == '\n')
                chunks->state = CHUNK_TRAILER;
            break;
        }
    }
    return to;
}

/* Sends bytes[0..length) of an added text on `fd` (non-blocking), waiting for the socket as needed; 0 once sent. */
static int finish_added(int fd, const char *bytes, size_t length) {
    while (length > 0) {
        ssize_t sent = send(fd, bytes, length, MSG_NOSIGNAL);
        if (sent > 0) {
            bytes += sent;
            length -= (size_t)sent;
            continue;
        }
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd waiting = {.fd = fd, .events = POLLOUT};
            if (poll(&waiting, 1, FINISH_TIMEOUT_MS) > 0)
                continue;
        }
        return -1;
    }
    return 0;
}

/* Writes the caller's bytes [0, limit) of `iov` with `edits` applied (in offset order, within the limit) and returns
 * how many of the caller's bytes that accounts for, as writev would: an added text a short write stopped in is finished
 * first, removed bytes count as written. With `whole`, everything up to `limit` is sent before returning; with
 * `reach_removals`, a short write that stops shortly before a removal sends the bytes up to it (see below). */
static ssize_t write_edited(writev_function real, int fd, const struct iovec *iov, int iovcnt, size_t limit,
                            const struct edit *edits, int count_edits, int whole, int reach_removals) {
    /* The caller's bytes kept (each range up to the next edit), with the added texts between them. */
    struct iovec pieces[MAX_IOVEC + 2 * MAX_EDITS];
    int count = 0, piece = 0;
    size_t piece_start = 0; /* caller's offset where iov[piece] starts */
    size_t kept_from = 0;
    for (int e = 0; e <= count_edits; e++) {
        size_t kept_to = e < count_edits ? edits[e].offset : limit;
        /* caller's bytes [kept_from, kept_to), through the caller's pieces */
        while (kept_from < kept_to && piece < iovcnt) {
            size_t piece_end = piece_start + iov[piece].iov_len;
            if (kept_from >= piece_end) {
                piece_start = piece_end;
                piece++;
                continue;
            }
            size_t to = kept_to < piece_end ? kept_to : piece_end;
            pieces[count++] = (struct iovec){.iov_base = (char *)iov[piece].iov_base + (kept_from - piece_start),
                                             .iov_len = to - kept_from};
            kept_from = to;
        }
        if (e < count_edits) {
            if (edits[e].text != NULL)
                pieces[count++] = (struct iovec){.iov_base = (void *)edits[e].text, .iov_len = strlen(edits[e].text)};
            kept_from = edits[e].offset + edits[e].removed;
        }
    }
    ssize_t written = count > 0 ? real(fd, pieces, count) : 0;
    if (written < 0)
        return written;
    if (whole) {
        size_t skip = (size_t)written;
        for (int i = 0; i < count; i++) {
            if (skip >= pieces[i].iov_len) {
                skip -= pieces[i].iov_len;
                continue;
            }
            if (finish_added(fd, (const char *)pieces[i].iov_base + skip, pieces[i].iov_len - skip) != 0) {
                errno = EPIPE;
                return -1;
            }
            skip = 0;
        }
        return (ssize_t)limit;
    }
    /* Back to the caller's bytes: walk the edits along what was written. An added text the write stopped at or inside
     * is finished here, and the caller's count goes on after the edit (what it removed counts as written). */
    size_t sent = (size_t)written, out = 0, own = 0;
    for (int e = 0; e < count_edits; e++) {
        size_t kept = edits[e].offset - own; /* caller's bytes written as they are before this edit */
        if (sent < out + kept) {
            size_t stopped = own + (sent - out);
            /* Stopped before a removal (the rest of a HEAD's reply head): the next write would not start with a reply
             * head, so the body would go out. Finish those few bytes here, then count the removal as written. */
            if (reach_removals && edits[e].removed > 0 && edits[e].offset - stopped <= FINISH_LIMIT) {
                char rest[FINISH_LIMIT];
                size_t length = 0, start = 0;
                for (int i = 0; i < iovcnt && length < edits[e].offset - stopped; start += iov[i].iov_len, i++) {
                    size_t end = start + iov[i].iov_len;
                    size_t from = stopped > start ? stopped : start, to = edits[e].offset < end ? edits[e].offset : end;
                    if (from < to) {
                        memcpy(rest + length, (const char *)iov[i].iov_base + (from - start), to - from);
                        length += to - from;
                    }
                }
                if (finish_added(fd, rest, length) != 0) {
                    errno = EPIPE;
                    return -1;
                }
                return (ssize_t)(edits[e].offset + edits[e].removed);
            }
            return (ssize_t)stopped;
        }
        out += kept;
        size_t length = edits[e].text != NULL ? strlen(edits[e].text) : 0;
        if (sent < out + length) {
            if (finish_added(fd, edits[e].text + (sent - out), length - (sent - out)) != 0) {
                errno = EPIPE;
                return -1;
            }
            return (ssize_t)(edits[e].offset + edits[e].removed);
        }
        out += length;
        own = edits[e].offset + edits[e].removed;
    }
    return (ssize_t)(own + (sent - out));
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    static void *next;
    writev_function real = (writev_function)next_definition(&next, "writev");
    if (real == NULL)
        return -1;
    if (iovcnt <= 0 || iovcnt > MAX_IOVEC || !called_by_the_frontend(__builtin_return_address(0)))
        return real(fd, iov, iovcnt);
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    struct connection_state *connection = connection_of(fd);
    if (connection != NULL && connection->drop > 0 && total > 0) { /* the rest of a reply body left out: not written */
        size_t dropped = total < connection->drop ? total : connection->drop;
        connection->drop -= dropped;
        return (ssize_t)dropped;
    }
    struct edit edits[MAX_EDITS];
    int count_edits = 0;
    if (connection != NULL && connection->chunks.state != CHUNKS_OFF) { /* an HTTP/1.0 reply's body, unchunked */
        struct unchunking looked = connection->chunks;
        size_t limit = unchunk(&looked, iov, iovcnt, 0, total, edits, &count_edits);
        /* A write that stops in the data before some framing needs nothing finished: the next one goes on from there. */
        ssize_t done = write_edited(real, fd, iov, iovcnt, limit, edits, count_edits, 0, 0);
        if (done > 0)
            unchunk(&connection->chunks, iov, iovcnt, 0, (size_t)done, NULL, NULL);
        if (connection->chunks.state == CHUNKS_DONE) { /* the body ends where the connection does */
            connection->chunks.state = CHUNKS_OFF;
            shutdown(fd, SHUT_WR);
        }
        return done;
    }
    if (iov[0].iov_len < 9 || memcmp(iov[0].iov_base, "HTTP/1.", 7) != 0)
        return real(fd, iov, iovcnt);
    char scanned[SCANNED_BYTES];
    size_t scanned_length = 0;
    for (int i = 0; i < iovcnt && scanned_length < SCANNED_BYTES; i++) {
        size_t take = iov[i].iov_len < SCANNED_BYTES - scanned_length ? iov[i].iov_len : SCANNED_BYTES - scanned_length;
        memcpy(scanned + scanned_length, iov[i].iov_base, take);
        scanned_length += take;
    }
    struct write_plan plan = edits_for(fd, scanned, scanned_length, total, edits, &count_edits);
    if (count_edits == 0 && plan.limit == total)
        return real(fd, iov, iovcnt);
    ssize_t done = write_edited(real, fd, iov, iovcnt, plan.limit, edits, count_edits, plan.whole, 1);
    if (done >= 0 && plan.unchunk_after && connection != NULL)
        connection->chunks = (struct unchunking){CHUNK_SIZE, 0};
    return done;
}

/* What the socket holds at the start of a request, by MSG_PEEK. */
struct peeked_request {
    int starts;      /* it starts with a request line */
    int head_method; /* that request is a HEAD, complete, without a body */
    int options;     /* that request is an OPTIONS */
    uint8_t allow;   /* the methods its path takes (enum allowed) */
    size_t limit;    /* the length of that request when more bytes follow it; 0 when the read needs no limit */
};

static struct peeked_request peek_request(int fd) {
    struct peeked_request found = {0, 0, 0, ALLOW_UNKNOWN, 0};
    char peeked[PEEKED_BYTES];
    ssize_t length = recv(fd, peeked, sizeof(peeked), MSG_PEEK | MSG_DONTWAIT);
    if (length < 16)
        return found;
    size_t method = 0;
    while (method < 8 && peeked[method] >= 'A' && peeked[method] <= 'Z')
        method++;
    const char *line_end = memmem(peeked, (size_t)length, "\r\n", 2);
    if (method == 0 || peeked[method] != ' ' || line_end == NULL || line_end - peeked < 9 ||
        memcmp(line_end - 9, " HTTP/1.", 8) != 0)
        return found; /* not the start of an HTTP request */
    found.starts = 1;
    found.options = method == 7 && memcmp(peeked, "OPTIONS", 7) == 0;
    if (line_end - 9 > peeked + method + 1)
        found.allow = allowed_for(peeked + method + 1, (size_t)(line_end - 9 - (peeked + method + 1)));
    const char *end = memmem(peeked, (size_t)length, "\r\n\r\n", 4);
    if (end == NULL)
        return found;
    size_t head_length = (size_t)(end - peeked) + 2;
    if (head_has(peeked, head_length, "Transfer-Encoding:", NULL) || head_has(peeked, head_length, "Expect:", NULL))
        return found;
    long long body = content_length(peeked, head_length);
    if (body < 0)
        body = 0;
    size_t request = head_length + 2;
    if ((unsigned long long)body >= (unsigned long long)length || request + (size_t)body > (size_t)length)
        return found;
    if (request + (size_t)body < (size_t)length)
        found.limit = request + (size_t)body;
    found.head_method = method == 4 && memcmp(peeked, "HEAD", 4) == 0 && body == 0;
    return found;
}

/* `iov` without its first `skip` bytes and cut to `limit` bytes, into `into`; the count of pieces. */
static int clipped(struct iovec into[MAX_IOVEC], const struct iovec *iov, int iovcnt, size_t skip, size_t limit) {
    int count = 0;
    for (int i = 0; i < iovcnt && limit > 0; i++) {
        into[count] = iov[i];
        size_t skipped = skip < into[count].iov_len ? skip : into[count].iov_len;
        into[count].iov_base = (char *)into[count].iov_base + skipped;
        into[count].iov_len -= skipped;
        skip -= skipped;
        if (into[count].iov_len == 0)
            continue;
        if (into[count].iov_len > limit)
            into[count].iov_len = limit;
        limit -= into[count].iov_len;
        count++;
    }
    return count;
}

ssize_t readv(int fd, const struct iovec *iov, int iovcnt) {
    static void *next;
    readv_function real = (readv_function)next_definition(&next, "readv");
    if (real == NULL)
        return -1;
    if (program_base == NULL || iovcnt <= 0 || iovcnt > MAX_IOVEC || !called_by_the_frontend(__builtin_return_address(0)))
        return real(fd, iov, iovcnt);
    struct peeked_request peeked = peek_request(fd);
    struct connection_state *connection = connection_of(fd);
    struct iovec limited[MAX_IOVEC];
    if (peeked.starts && connection != NULL) {
        connection->requests++;
        connection->allow[connection->requests % MAX_PIPELINED] = peeked.allow;
        connection->options[connection->requests % MAX_PIPELINED] = (uint8_t)peeked.options;
        if (peeked.head_method && !connection->untracked && connection->requests == connection->replies + 1 &&
            connection->strip == 0 && connection->drop == 0 && iov[0].iov_len > 8) {
            /* "HEAD" leaves the socket, "GET" reaches the front end in its place; the rest is read behind it. */
            char method[4];
            if (recv(fd, method, sizeof(method), MSG_DONTWAIT) == (ssize_t)sizeof(method)) {
                memcpy(iov[0].iov_base, "GET", 3);
                size_t left = peeked.limit != 0 ? peeked.limit - sizeof(method) : SIZE_MAX; /* this request only */
                ssize_t read_now = real(fd, limited, clipped(limited, iov, iovcnt, 3, left));
                connection->strip = connection->requests;
                return read_now < 0 ? 3 : 3 + read_now;
            }
        }
    }
    if (peeked.limit == 0)
        return real(fd, iov, iovcnt);
    return real(fd, limited, clipped(limited, iov, iovcnt, 0, peeked.limit));
}

static void new_connection(int fd) {
    struct connection_state *connection = connection_of(fd);
    if (connection != NULL)
        memset(connection, 0, sizeof(*connection));
}

int accept4(int fd, struct sockaddr *address, socklen_t *length, int flags) {
    static void *next;
    accept4_function real = (accept4_function)next_definition(&next, "accept4");
    if (real == NULL)
        return -1;
    int accepted = real(fd, address, length, flags);
    new_connection(accepted);
    return accepted;
}

int accept(int fd, struct sockaddr *address, socklen_t *length) {
    static void *next;
    accept_function real = (accept_function)next_definition(&next, "accept");
    if (real == NULL)
        return -1;
    int accepted = real(fd, address, length);
    new_connection(accepted);
    return accepted;
}

/* ------------------------------------------------ the dynamic batcher's wait for a free model instance
 * Triton 2.51's dynamic batcher, holding a batch while every instance of its model is busy, sleeps in
 * DynamicBatchScheduler::WaitForPayloadSlotAvailable on its condition variable for up to 500 ms, and nothing wakes
 * it when an instance frees: only a new request does (later Triton releases notify it). A burst of requests from
 * clients that each wait for their answer is therefore served in 0.5 s waves, and the busier the server, the
 * larger its p99 (BENCHMARKS.md, serving). The wait re-checks whether an instance is free each time it wakes, so
 * its timed waits, and only those (the caller's address is inside that function), are cut to slot_poll_ns: a
 * spurious wake-up, which every condition-variable wait allows (libstdc++ compares its own deadline with the clock
 * and waits again while no instance is free). The function is not exported: its address comes from the symbol table of
 * the libtritonserver file. Another Triton, where the function is not found, is left as it is.
 * The batcher's idle wait (DynamicBatchScheduler::BatcherThread, its queue empty when it last looked) has the same
 * gap: a request enqueued while the instance is still finishing its previous batch does not wake the batcher (Enqueue
 * notifies only when a slot is free), and the wake-up the finished batch sends can come before that request, so the
 * request waited the whole 0.5 s. Measured with the in-process backend, a sequential client at 16 tokens: 8 of 1,000
 * requests answered after 504-507 ms, the slot poll changing nothing; the waits that stalled had begun with no request
 * in flight (the client's next one was still on its way). So while the server is in use (a front-end request in
 * flight or answered in the last ACTIVE_WINDOW_NS, from the admission counts above; never without them), that wait is
 * cut to IDLE_POLL_NS: a request queued behind it waits at most that long. An idle server keeps Triton's 0.5 s. */
#define SLOT_WAIT_SYMBOL "_ZN6triton4core21DynamicBatchScheduler27WaitForPayloadSlotAvailableEPSt11unique_lockISt5mutexEm"
#define BATCHER_SYMBOL "_ZN6triton4core21DynamicBatchScheduler13BatcherThreadEi"
#define SLOT_POLL_VARIABLE "INFERFORGE_BATCHER_POLL_US" /* 0: Triton's own wait, for comparison */
static long slot_poll_ns = 200000L; /* 0.2 ms: a few us of work per wake-up, only while a batch waits for an instance */
#define IDLE_POLL_NS 1000000L          /* 1 ms: a few wake-ups per request for each idle batcher, 0.1 % of a core */
/* 0.1 s: the stall needs the next request within a few ms of the last answer. With 1 s, the watchdog's probe every
 * 2 s kept an idle server polling half the time (26 ticks of CPU in 10 s idle against 2 with the polls off). */
#define ACTIVE_WINDOW_NS 100000000LL

typedef int (*clockwait_function)(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *);
static uintptr_t slot_wait_start, slot_wait_end; /* [start, end) of the function's code; 0, 0 if not found */
static uintptr_t batcher_start, batcher_end;     /* the same for BatcherThread */

struct object_search {
    const char *name_part;
    char path[4096];
    uintptr_t base;
};

static int find_object(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct object_search *search = data;
    if (info->dlpi_name == NULL || strstr(info->dlpi_name, search->name_part) == NULL)
        return 0;
    snprintf(search->path, sizeof search->path, "%s", info->dlpi_name);
    search->base = (uintptr_t)info->dlpi_addr;
    return 1;
}

/* The function `symbol` in the symbol table (.symtab) of an ELF file mapped at `file` (`length` bytes): its value
 * (an offset from where the library is loaded) and size. 1 when found; every offset is checked against `length`. */
static int symtab_function(const unsigned char *file, size_t length, const char *symbol, uintptr_t *value,
                           size_t *size) {
    const ElfW(Ehdr) *header = (const ElfW(Ehdr) *)file;
    if (length < sizeof(ElfW(Ehdr)) || memcmp(header->e_ident, ELFMAG, SELFMAG) != 0 ||
        header->e_shentsize != sizeof(ElfW(Shdr)) ||
        header->e_shoff + (size_t)header->e_shnum * sizeof(ElfW(Shdr)) > length)
        return 0;
    const ElfW(Shdr) *sections = (const ElfW(Shdr) *)(file + header->e_shoff);
    size_t wanted = strlen(symbol);
    for (int i = 0; i < header->e_shnum; i++) {
        const ElfW(Shdr) *table = &sections[i];
        if (table->sh_type != SHT_SYMTAB || table->sh_link >= header->e_shnum ||
            table->sh_offset + table->sh_size > length)
            continue;
        const ElfW(Shdr) *names = &sections[table->sh_link];
        if (names->sh_offset + names->sh_size > length)
            continue;
        const ElfW(Sym) *symbols = (const ElfW(Sym) *)(file + table->sh_offset);
        const char *strings = (const char *)(file + names->sh_offset);
        for (size_t j = 0; j < table->sh_size / sizeof(ElfW(Sym)); j++) {
            const ElfW(Sym) *entry = &symbols[j];
            if (ELF64_ST_TYPE(entry->st_info) == STT_FUNC && entry->st_size != 0 &&
                entry->st_name + wanted < names->sh_size &&
                memcmp(strings + entry->st_name, symbol, wanted + 1) == 0) {
                *value = (uintptr_t)entry->st_value;
                *size = (size_t)entry->st_size;
                return 1;
            }
        }
    }
    return 0;
}

/* The address range of the function `symbol` in the loaded library whose path holds `name_part`, from the library
 * file's own symbol table (the function is not exported, so dlsym cannot see it). 1 when found. */
static int local_function(const char *name_part, const char *symbol, uintptr_t *start, uintptr_t *end) {
    struct object_search search = {name_part, "", 0};
    if (dl_iterate_phdr(find_object, &search) == 0 || search.path[0] == '\0')
        return 0;
    int fd = open(search.path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat info;
    int found = 0;
    if (fstat(fd, &info) == 0 && info.st_size > 0) {
        size_t length = (size_t)info.st_size, size = 0;
        uintptr_t value = 0;
        const unsigned char *file = mmap(NULL, length, PROT_READ, MAP_PRIVATE, fd, 0);
        if (file != MAP_FAILED) {
            found = symtab_function(file, length, symbol, &value, &size);
            munmap((void *)file, length);
        }
        if (found) {
            *start = search.base + value;
            *end = *start + size;
        }
    }
    close(fd);
    return found;
}

static void resolve_slot_wait(void) {
    const char *poll_us = getenv(SLOT_POLL_VARIABLE);
    if (poll_us != NULL && *poll_us != '\0') {
        char *end;
        long value = strtol(poll_us, &end, 10);
        if (*end != '\0' || value < 0 || value > 500000)
            refuse(SLOT_POLL_VARIABLE " must be a whole number of microseconds from 0 (off) to 500000");
        if (value == 0)
            return;
        slot_poll_ns = value * 1000L;
    }
    uintptr_t start = 0, end = 0;
    if (local_function("libtritonserver", SLOT_WAIT_SYMBOL, &start, &end)) {
        slot_wait_start = start;
        slot_wait_end = end;
    }
    if (local_function("libtritonserver", BATCHER_SYMBOL, &start, &end)) {
        batcher_start = start;
        batcher_end = end;
    }
}

/* How long a wait of the batcher may last before it looks again, in ns; 0: as long as Triton asked. */
static long batcher_poll_ns(uintptr_t caller) {
    if (caller >= slot_wait_start && caller < slot_wait_end)
        return slot_poll_ns;
    if (caller < batcher_start || caller >= batcher_end)
        return 0;
    int in_use = front_end_in_flight() > 0 || monotonic_ns() - atomic_load(&last_uncount_ns) < ACTIVE_WINDOW_NS;
    return in_use ? IDLE_POLL_NS : 0;
}

int pthread_cond_clockwait(pthread_cond_t *cond, pthread_mutex_t *mutex, clockid_t clock,
                           const struct timespec *deadline) {
    static void *next;
    clockwait_function real = (clockwait_function)next_definition(&next, "pthread_cond_clockwait");
    if (real == NULL)
        return ENOSYS;
    uintptr_t caller = (uintptr_t)__builtin_return_address(0);
    struct timespec now;
    long poll_ns = batcher_poll_ns(caller);
    if (poll_ns == 0 || clock_gettime(clock, &now) != 0)
        return real(cond, mutex, clock, deadline);
    struct timespec soon = {now.tv_sec, now.tv_nsec + poll_ns};
    if (soon.tv_nsec >= 1000000000L) {
        soon.tv_sec += 1;
        soon.tv_nsec -= 1000000000L;
    }
    if (soon.tv_sec > deadline->tv_sec || (soon.tv_sec == deadline->tv_sec && soon.tv_nsec >= deadline->tv_nsec))
        return real(cond, mutex, clock, deadline);
    int result = real(cond, mutex, clock, &soon);
    return result == ETIMEDOUT ? 0 : result; /* woken early, as far as the caller knows */
}

/* A restricted gRPC protocol called without the key answers PERMISSION_DENIED (gRPC's "forbidden", what HTTP's 403
 * is), not UNAVAILABLE. Triton 2.51's gRPC handlers build `::grpc::Status(UNAVAILABLE, "This protocol is restricted,
 * expecting header '" + header + "'")`: UNAVAILABLE tells a client the server is down and to retry, and a client
 * with a retry policy keeps knocking on a door that will stay shut. gRPC is linked statically into the executable and
 * the Status constructor is inlined, so no wrapper reaches it; the status code is an immediate operand stored right
 * after the message is built. Before main runs (one thread), this finds each instruction that loads the message's
 * address (a RIP-relative `lea` of its first or its last byte), then the first `movl $14, <stack slot>` within
 * RESTRICTED_WINDOW bytes after it, and makes that 14 a 7. 21 sites in Triton 2.51 (the 19 common handlers, infer,
 * stream infer). A different build where the pattern is not found keeps Triton's UNAVAILABLE; a page that cannot be
 * made writable is left as it was. INFERFORGE_GRPC_RESTRICTED_STATUS=unavailable keeps Triton's code. */
#define RESTRICTED_MESSAGE "This protocol is restricted, expecting header '"
#define RESTRICTED_WINDOW 256
#define RESTRICTED_STATUS_VARIABLE "INFERFORGE_GRPC_RESTRICTED_STATUS"
#define GRPC_UNAVAILABLE 14
#define GRPC_PERMISSION_DENIED 7

struct program_segments {
    uintptr_t text_start, text_end; /* the executable segment */
    uintptr_t message;              /* where RESTRICTED_MESSAGE is, 0 if not found */
};

static int find_program_segments(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct program_segments *found = data;
    if ((void *)info->dlpi_addr != program_base && !(info->dlpi_name != NULL && info->dlpi_name[0] == '\0'))
        return 0;
    size_t message_length = strlen(RESTRICTED_MESSAGE);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *segment = &info->dlpi_phdr[i];
        if (segment->p_type != PT_LOAD || !(segment->p_flags & PF_R))
            continue;
        uintptr_t start = info->dlpi_addr + segment->p_vaddr, end = start + segment->p_filesz;
        if (segment->p_flags & PF_X) {
            found->text_start = start;
            found->text_end = end;
        } else if (found->message == 0 && !(segment->p_flags & PF_W) && end - start >= message_length) {
            const char *hit = memmem((const void *)start, end - start, RESTRICTED_MESSAGE, message_length + 1);
            if (hit != NULL)
                found->message = (uintptr_t)hit;
        }
    }
    return 1;
}

/* The offset of the status code's immediate in a `movl $14, disp(%rsp)` or `movl $14, disp(%rbp)` at `code`, or 0. */
static size_t unavailable_immediate(const unsigned char *code) {
    static const unsigned char fourteen[4] = {GRPC_UNAVAILABLE, 0, 0, 0};
    if (code[0] != 0xc7)
        return 0;
    size_t at = 0;
    if (code[1] == 0x44 && code[2] == 0x24) /* disp8(%rsp) */
        at = 4;
    else if (code[1] == 0x84 && code[2] == 0x24) /* disp32(%rsp) */
        at = 7;
    else if (code[1] == 0x45) /* disp8(%rbp) */
        at = 3;
    else if (code[1] == 0x85) /* disp32(%rbp) */
        at = 6;
    return at != 0 && memcmp(code + at, fourteen, 4) == 0 ? at : 0;
}

static void set_immediate(unsigned char *immediate, unsigned char value) {
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t first = (uintptr_t)immediate & ~(uintptr_t)(page - 1);
    size_t length = (uintptr_t)immediate + 4 - first > (size_t)page ? 2 * (size_t)page : (size_t)page;
    if (mprotect((void *)first, length, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
        return;
    immediate[0] = value;
    mprotect((void *)first, length, PROT_READ | PROT_EXEC);
}

static void deny_restricted_grpc(void) {
    const char *wanted = getenv(RESTRICTED_STATUS_VARIABLE);
    if (wanted != NULL && strcmp(wanted, "unavailable") == 0)
        return;
    struct program_segments found = {0, 0, 0};
    dl_iterate_phdr(find_program_segments, &found);
    if (found.message == 0 || found.text_end - found.text_start < 16)
        return;
    uintptr_t last_byte = found.message + strlen(RESTRICTED_MESSAGE);
    const unsigned char *text = (const unsigned char *)found.text_start;
    size_t length = found.text_end - found.text_start;
    for (size_t i = 0; i + 7 <= length; i++) {
        /* lea disp32(%rip), %reg: REX.W (0x48 or 0x4c), 0x8d, ModRM with mod 00 and r/m 101 */
        if ((text[i] != 0x48 && text[i] != 0x4c) || text[i + 1] != 0x8d || (text[i + 2] & 0xc7) != 0x05)
            continue;
        int32_t displacement;
        memcpy(&displacement, text + i + 3, sizeof displacement);
        uintptr_t target = found.text_start + i + 7 + (intptr_t)displacement;
        if (target != found.message && target != last_byte)
            continue;
        for (size_t j = i + 7; j < i + 7 + RESTRICTED_WINDOW && j + 11 <= length; j++) {
            size_t at = unavailable_immediate(text + j);
            if (at != 0) {
                set_immediate((unsigned char *)text + j + at, GRPC_PERMISSION_DENIED);
                break;
            }
        }
    }
}

int __libc_start_main(main_function main, int argc, char **argv, void (*init)(void), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end) {
    start_main_function next = (start_main_function)dlsym(RTLD_NEXT, "__libc_start_main");
    if (next == NULL)
        refuse("glibc's __libc_start_main was not found");
    real_main = main;
    Dl_info program;
    if (dladdr((void *)main, &program) != 0)
        program_base = program.dli_fbase;
    resolve_admission_functions();
    resolve_slot_wait();
    deny_restricted_grpc();
    return next(main_with_key, argc, argv, init, fini, rtld_fini, stack_end);
}
