package dev.sdeploy.demo.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class EngineKindTest {
    @Test
    fun everyAndroidFormatHasItsEngine() {
        assertEquals(EngineKind.EXECUTORCH, EngineKind.forFormat("pte"))
        assertEquals(EngineKind.PYTORCH_LITE, EngineKind.forFormat("torchscript-lite"))
        assertEquals(EngineKind.LITERT, EngineKind.forFormat("tflite"))
        assertEquals(listOf("pte", "torchscript-lite", "tflite"), EngineKind.values().map { it.format })
    }

    private fun messageFor(format: String): String = try {
        EngineKind.forFormat(format)
        fail("format '$format' was accepted")
        ""
    } catch (e: UnsupportedFormatException) {
        e.message ?: ""
    }

    @Test
    fun anUnknownFormatGivesAClearMessage() {
        val message = messageFor("safetensors")
        for (fragment in listOf("'safetensors'", "cannot run", "'pte' (ExecuTorch)", "'torchscript-lite' (PyTorch lite interpreter)",
                "'tflite' (LiteRT)", "sdeploy bundle --app android")) {
            assertTrue("'$message' lacks '$fragment'", message.contains(fragment))
        }
        assertTrue(messageFor("onnx").contains("web demo"))
        assertTrue(messageFor("mlpackage").contains("iOS demo"))
        assertTrue(messageFor("").contains("format ''"))
    }

    @Test
    fun modelJsonFormatPicksTheEngineAndAnUnknownOneIsAnErrorNotACrash() {
        val base = ModelJsonTest.MINIMAL_V2
        assertEquals(EngineKind.EXECUTORCH, ModelInfo.parse(base).engineKind())
        val odd = ModelInfo.parse(base.replace("\"format\": \"pte\"", "\"format\": \"gguf\""))
        try {
            odd.engineKind()
            fail("gguf has no engine")
        } catch (e: UnsupportedFormatException) {
            assertTrue(e.message, (e.message ?: "").contains("'gguf'"))
        }
    }

    @Test
    fun aModelForAnotherBuildVariantSaysWhichOneToRun() {
        val message = wrongVariantMessage(EngineKind.LITERT, EngineKind.EXECUTORCH, "tflite")
        for (fragment in listOf("LiteRT (format 'tflite')", "the ExecuTorch build", "'litert' build variant",
                "./gradlew installLitertDebug", "sdeploy bundle --app android --target executorch")) {
            assertTrue("'$message' lacks '$fragment'", message.contains(fragment))
        }
        assertTrue(wrongVariantMessage(EngineKind.PYTORCH_LITE, EngineKind.LITERT, "torchscript-lite").contains("installPytorchLiteDebug"))
    }
}

