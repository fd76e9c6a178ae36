"""Tests for mxref.auth.passwords: bcrypt hashing and checking, Synapse compatibility, thread pool use."""

from twisted.internet.testing import MemoryReactorClock
from twisted.python.threadpool import ThreadPool
from twisted.trial import unittest

from mxref.auth.passwords import PasswordHasher, prepare_password

# Made with Synapse's recipe (NFKC, UTF-8, pepper appended, bcrypt cost 4) as
# an imported Synapse database would hold them.
SYNAPSE_HASH_PLAIN = "$2b$04$6ANjSrn7UYefLKSzMFYf9.L/.cwbr6NlzihIUSLKKmP1mi/c31uFG"  # "correct horse", no pepper
SYNAPSE_HASH_PEPPERED = "$2b$04$w/CRP84osHsBilUZm/Bz9eAmHEx7.9ya9OMnm2mtAoNInGQMvWj4K"  # NFKC("ﬁshé"), pepper "pep"


class PasswordHasherTests(unittest.TestCase):
    def setUp(self):
        self.hasher = PasswordHasher.synchronous(rounds=4)

    def check(self, password, stored, hasher=None):
        return self.successResultOf((hasher or self.hasher).check_password(password, stored))

    def test_hash_then_check(self):
        """A password checks against its own hash; a different one does not."""
        stored = self.successResultOf(self.hasher.hash_password("s3cret pässword"))
        self.assertTrue(stored.startswith("$2b$04$"))
        self.assertTrue(self.check("s3cret pässword", stored))
        self.assertFalse(self.check("s3cret password", stored))

    def test_hashes_are_salted(self):
        """Hashing the same password twice gives two different hashes."""
        first = self.successResultOf(self.hasher.hash_password("same"))
        second = self.successResultOf(self.hasher.hash_password("same"))
        self.assertNotEqual(first, second)

    def test_default_cost_is_12(self):
        """Without a rounds setting, new hashes use bcrypt cost 12."""
        hasher = PasswordHasher(None, None)
        self.assertTrue(hasher.needs_rehash(SYNAPSE_HASH_PLAIN))
        self.assertFalse(hasher.needs_rehash("$2b$12$" + "a" * 53))

    def test_synapse_hash_is_accepted(self):
        """A $2b$ hash from a Synapse database checks with the same password."""
        self.assertTrue(self.check("correct horse", SYNAPSE_HASH_PLAIN))
        self.assertFalse(self.check("correct horse!", SYNAPSE_HASH_PLAIN))

    def test_synapse_normalisation_and_pepper(self):
        """Synapse's NFKC normalisation and pepper are applied, so a decomposed spelling still matches."""
        peppered = PasswordHasher.synchronous(pepper="pep")
        self.assertTrue(self.check("ﬁsh\u00e9", SYNAPSE_HASH_PEPPERED, peppered))
        self.assertTrue(self.check("fishe\u0301", SYNAPSE_HASH_PEPPERED, peppered))
        self.assertFalse(self.check("ﬁsh\u00e9", SYNAPSE_HASH_PEPPERED))

    def test_2y_prefix_is_accepted(self):
        """Hashes written with the $2y$ prefix (PHP and others) check too."""
        self.assertTrue(self.check("correct horse", SYNAPSE_HASH_PLAIN.replace("$2b$", "$2y$")))

    def test_missing_or_malformed_hash_never_matches(self):
        """An account without a password, or with a corrupt hash, rejects every password."""
        for stored in (None, "", "not a hash", "$2b$04$short", b"$2b$04$" + b"!" * 53):
            self.assertFalse(self.check("", stored))

    def test_long_passwords_are_cut_at_72_bytes(self):
        """Passwords longer than bcrypt's 72 bytes hash and check (bcrypt reads the first 72 bytes)."""
        long_password = "x" * 100
        stored = self.successResultOf(self.hasher.hash_password(long_password))
        self.assertTrue(self.check(long_password, stored))
        self.assertEqual(len(prepare_password("é" * 50)), 72)

    def test_rounds_out_of_range(self):
        """A cost below 4 or above 31 is a configuration error."""
        self.assertRaises(ValueError, PasswordHasher.synchronous, rounds=3)
        self.assertRaises(ValueError, PasswordHasher.synchronous, rounds=32)

    def test_work_runs_in_the_thread_pool(self):
        """With a thread pool, hashing is handed to the pool and the result comes back on the reactor."""
        submitted = []

        class RecordingPool(ThreadPool):
            def callInThreadWithCallback(self, onResult, function, *args, **kwargs):
                submitted.append(function)
                onResult(True, function(*args, **kwargs))

        class ReactorRunningNow(MemoryReactorClock):
            def callFromThread(self, function, *args, **kwargs):
                function(*args, **kwargs)

        hasher = PasswordHasher(ReactorRunningNow(), RecordingPool(), rounds=4)
        stored = self.successResultOf(hasher.hash_password("pw"))
        self.assertTrue(self.successResultOf(hasher.check_password("pw", stored)))
        self.assertEqual(len(submitted), 2)
