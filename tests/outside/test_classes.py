from kernelcheck import running_release


class TestPlainClass:
    @classmethod
    def setup_class(cls):
        cls.class_release = running_release("setup_class")

    def setup_method(self, method):
        self.method_release = running_release(f"setup_method {method.__name__}")

    def test_one(self):
        assert running_release("TestPlainClass.test_one") == self.class_release == self.method_release

    def test_two(self):
        assert running_release("TestPlainClass.test_two") == self.class_release
