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
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int main_with_key(int argc, char **argv, char **envp) {
    (void)envp;
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

void *TRITONSERVER_ErrorNew(int code, const char *message) {
    static error_new_function real;
    if (real == NULL)
        real = (error_new_function)dlsym(RTLD_NEXT, "TRITONSERVER_ErrorNew");
    Dl_info caller;
    if (code == TRITONSERVER_ERROR_INTERNAL && program_base != NULL && is_parse_error(message) &&
        dladdr(__builtin_return_address(0), &caller) != 0 && caller.dli_fbase == program_base)
        code = TRITONSERVER_ERROR_INVALID_ARG;
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

int __libc_start_main(main_function main, int argc, char **argv, void (*init)(void), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end) {
    start_main_function next = (start_main_function)dlsym(RTLD_NEXT, "__libc_start_main");
    if (next == NULL)
        refuse("glibc's __libc_start_main was not found");
    real_main = main;
    Dl_info program;
    if (dladdr((void *)main, &program) != 0)
        program_base = program.dli_fbase;
    return next(main_with_key, argc, argv, init, fini, rtld_fini, stack_end);
}
