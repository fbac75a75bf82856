package dev.sdeploy.demo

import android.content.Context
import android.os.SystemClock
import dev.sdeploy.demo.core.ArgbImage
import dev.sdeploy.demo.core.Labels
import dev.sdeploy.demo.core.ModelInfo
import dev.sdeploy.demo.core.Prediction
import dev.sdeploy.demo.core.Preprocess
import dev.sdeploy.demo.core.Sha256
import dev.sdeploy.demo.core.TopK
import org.pytorch.IValue
import org.pytorch.LiteModuleLoader
import org.pytorch.Module
import org.pytorch.Tensor
import java.io.File
import java.io.FileInputStream
import java.io.FileNotFoundException
import java.io.FileOutputStream
import java.io.IOException

/** The bundled model (assets/model.json, labels, model.ptl) on the PyTorch lite interpreter. Not thread-safe. */
class Classifier private constructor(val info: ModelInfo, val labels: List<String>, private val module: Module) {
    class Result(val predictions: List<Prediction>, val preprocessMs: Double, val inferenceMs: Double)

    fun classify(image: ArgbImage, k: Int = 5): Result {
        val start = SystemClock.elapsedRealtimeNanos()
        val input = Preprocess.preprocess(image.pixels, image.width, image.height, info.preprocess)
        val preprocessed = SystemClock.elapsedRealtimeNanos()
        val tensor = Tensor.fromBlob(input, info.inputShape())
        val logits = module.forward(IValue.from(tensor)).toTensor().dataAsFloatArray
        val done = SystemClock.elapsedRealtimeNanos()
        return Result(TopK.predictions(logits, labels, k), (preprocessed - start) / 1e6, (done - preprocessed) / 1e6)
    }

    fun close() = module.destroy()

    companion object {
        private const val BUNDLE_HINT =
            "run `sdeploy bundle --app android --arch v2_x0_5` from the repository root, then rebuild the app"

        fun load(context: Context): Classifier {
            val info = ModelInfo.parse(readAsset(context, "model.json"))
            if (info.format != "torchscript-lite") {
                throw IOException("model.json describes a ${info.format} model, this app runs torchscript-lite: $BUNDLE_HINT")
            }
            val labels = Labels.parse(readAsset(context, info.labelsFile), info.numClasses, info.labelsFile)
            val file = copyModel(context, info)
            return Classifier(info, labels, LiteModuleLoader.load(file.absolutePath))
        }

        private fun readAsset(context: Context, name: String): String = try {
            context.assets.open(name).use { it.readBytes().toString(Charsets.UTF_8) }
        } catch (e: FileNotFoundException) {
            throw IOException("$name is not in the app's assets: $BUNDLE_HINT")
        }

        /** LiteModuleLoader needs a file path: copy the asset once, named after its sha256, and check it. */
        private fun copyModel(context: Context, info: ModelInfo): File {
            val dir = File(context.filesDir, "models").apply { mkdirs() }
            val sha = info.sha256
            val target = File(dir, (sha?.take(16) ?: "unversioned") + "-" + info.modelFile)
            if (sha != null && target.isFile) return target
            dir.listFiles()?.forEach { it.delete() } // older bundles
            val tmp = File(dir, target.name + ".tmp")
            try {
                context.assets.open(info.modelFile).use { input -> FileOutputStream(tmp).use { input.copyTo(it) } }
            } catch (e: FileNotFoundException) {
                throw IOException("${info.modelFile} is not in the app's assets: $BUNDLE_HINT")
            }
            if (sha != null) {
                val actual = FileInputStream(tmp).use { Sha256.hex(it) }
                if (actual != sha) {
                    tmp.delete()
                    throw IOException("${info.modelFile} does not match the sha256 in model.json: $BUNDLE_HINT")
                }
            }
            if (!tmp.renameTo(target)) throw IOException("cannot write $target")
            return target
        }
    }
}
